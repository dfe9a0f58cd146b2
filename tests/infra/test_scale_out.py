"""The scale-out configs in infra/ are checked with the tools that would run them: Kubernetes schemas
(kubernetes-validate, offline), Prefect's own prefect.yaml model and job-template rendering, DVC's remote
config, Lightning's strategy objects and the gateway's settings model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "infra" / "k8s").glob("*.yaml"))


def _validate_k8s(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, "1.33.0", strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_are_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        _validate_k8s(doc)


def test_vllm_deployment_matches_the_cluster_profile() -> None:
    from lmforge.config import load_config

    cfg = load_config("gpu-cluster")
    deployment = next(yaml.safe_load_all((ROOT / "infra" / "k8s" / "vllm.yaml").read_text()))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == str(cfg.serve.tensor_parallel_size)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(cfg.serve.tensor_parallel_size)
    assert args[args.index("--served-model-name") + 1] == cfg.model_name(cfg.registry.serve_role)
    fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert f"models:/{cfg.model_name(cfg.registry.serve_role)}@champion" in fetch


def test_gateway_settings_secret_is_a_valid_gateway_config() -> None:
    from lmforge.serve.settings import GatewaySettings

    secret = [d for d in yaml.safe_load_all((ROOT / "infra" / "k8s" / "gateway.yaml").read_text())
              if d["kind"] == "Secret"][0]
    settings = GatewaySettings.model_validate_json(secret["stringData"]["gateway.json"])
    assert settings.upstream_url.startswith("http://lmforge-vllm.")
    assert settings.rate_limit_storage.startswith("redis://lmforge-redis.") and settings.upstream_key_file


def test_only_the_gateway_reaches_vllm_and_redis() -> None:
    """vLLM requires the key only the gateway mounts, and NetworkPolicies admit only gateway pods to vLLM and Redis."""
    docs = [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    gateway_labels = deployments["lmforge-gateway"]["spec"]["template"]["metadata"]["labels"]
    for target, port in (("lmforge-vllm", 8100), ("lmforge-redis", 6379)):
        pod_labels = deployments[target]["spec"]["template"]["metadata"]["labels"]
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"
                    and d["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()]
        assert len(policies) == 1 and policies[0]["spec"]["policyTypes"] == ["Ingress"], target
        (rule,) = policies[0]["spec"]["ingress"]
        assert [p["podSelector"]["matchLabels"] for p in rule["from"]] == [gateway_labels]
        assert [p["port"] for p in rule["ports"]] == [port]
    vllm = deployments["lmforge-vllm"]["spec"]["template"]["spec"]["containers"][0]
    (key_env,) = [e for e in vllm["env"] if e["name"] == "VLLM_API_KEY"]
    assert "--api-key" not in vllm["args"]  # never on a command line
    sources = deployments["lmforge-gateway"]["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    assert key_env["valueFrom"]["secretKeyRef"]["name"] in [s["secret"]["name"] for s in sources if "secret" in s]


def test_prefect_k8s_work_pool_renders_a_valid_job() -> None:
    from prefect.utilities.templating import apply_values

    template = json.loads((ROOT / "infra" / "prefect" / "k8s-work-pool.json").read_text())
    values = {name: spec.get("default") for name, spec in template["variables"]["properties"].items()}
    values.update(command=["prefect", "flow-run", "execute"], env=[{"name": "PREFECT_API_URL", "value": "x"}])
    rendered = apply_values(template["job_configuration"], values)
    job = rendered["job_manifest"]
    _validate_k8s(job)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == values["image"]


@pytest.mark.parametrize("path", [ROOT / "prefect.yaml", ROOT / "infra" / "prefect" / "prefect-k8s.yaml"],
                         ids=lambda p: p.name)
def test_prefect_yaml_files_parse_with_prefect_and_name_real_flows(path: Path) -> None:
    import importlib

    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(yaml.safe_load(path.read_text()))
    assert model.deployments
    for deployment in model.deployments:
        module_path, _, name = deployment.entrypoint.partition(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert set(deployment.parameters) <= set(flow.parameters.properties), deployment.name


def test_lightning_strategies_from_the_cluster_profile() -> None:
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from lmforge.config import load_config
    from lmforge.train.loop import build_strategy

    cfg = load_config("gpu-cluster")
    fsdp = build_strategy(cfg.pretrain.train)
    assert isinstance(fsdp, FSDPStrategy)
    assert fsdp._process_group_backend == "nccl" and fsdp._state_dict_type == "full"
    assert LlamaDecoderLayer in fsdp.kwargs["auto_wrap_policy"]._module_classes
    ddp = build_strategy(cfg.finetune.train)
    assert isinstance(ddp, DDPStrategy) and ddp._process_group_backend == "nccl"
    assert isinstance(build_strategy(load_config("tiny", ["pretrain.train.strategy=ddp"]).pretrain.train),
                      DDPStrategy)
    assert build_strategy(load_config("tiny").pretrain.train) == "auto"


def test_launchers_match_the_cluster_profile() -> None:
    from lmforge.config import load_config

    train = load_config("gpu-cluster").pretrain.train
    sbatch = (ROOT / "infra" / "slurm" / "pretrain.sbatch").read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", sbatch, re.M))
    assert int(directives["nodes"]) == train.num_nodes
    assert int(directives["ntasks-per-node"]) == int(directives["gpus-per-node"]) == train.devices
    torchrun = (ROOT / "infra" / "torchrun" / "pretrain.sh").read_text()
    assert f"NNODES:-{train.num_nodes}" in torchrun and f"NPROC_PER_NODE:-{train.devices}" in torchrun
    for script in ("slurm/pretrain.sbatch", "torchrun/pretrain.sh", "dvc-remote-s3.sh", "prefect-worker.sh",
                   "prefect-deploy.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "infra" / script)], check=True)


def test_dvc_s3_remote_script(tmp_path: Path) -> None:
    dvc_bin = str(Path(sys.executable).parent / "dvc")
    env = {**os.environ, "DVC": dvc_bin, "DVC_S3_URL": "s3://dvc/lmforge",
           "DVC_S3_ENDPOINT": "http://minio.internal:9000", "AWS_ACCESS_KEY_ID": "key",
           "AWS_SECRET_ACCESS_KEY": "secret"}
    subprocess.run([dvc_bin, "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=env)
    out = subprocess.run(["bash", str(ROOT / "infra" / "dvc-remote-s3.sh")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "s3://dvc/lmforge" in out
    config = (tmp_path / ".dvc" / "config").read_text()
    assert "remote = s3" in config and "endpointurl = http://minio.internal:9000" in config
    assert "secret" not in config and "secret_access_key = secret" in (tmp_path / ".dvc" / "config.local").read_text()
