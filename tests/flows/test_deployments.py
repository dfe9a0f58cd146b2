"""prefect.yaml on a real Prefect server on 127.0.0.1: the deployments and schedules are registered by
infra/prefect-deploy.sh, the worker of infra/prefect-worker.sh runs a stage flow, and the scheduled rollout
pauses for a reviewer and, rejected, ends without rolling anything out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]  # whole runs
ROOT = Path(__file__).resolve().parents[2]


def _wait(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path_factory.mktemp("prefect-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PORT": str(port),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    log = (home / "server.log").open("w")
    server = subprocess.Popen(["bash", str(ROOT / "infra" / "prefect-server.sh")], env={**env, "LMFORGE_STATE_DIR":
                              str(home.parent / "server-state")}, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, preexec_fn=_as_a_background_job)
    processes = [server]

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return server.poll() is not None and pytest.fail((home / "server.log").read_text()[-3000:])

    try:
        _wait(healthy, 300, "the Prefect server")
        yield {"env": env, "processes": processes, "home": str(home)}
    finally:
        stubborn = [_stop(proc) for proc in processes]  # the worker first: it reports to the server as it ends
    assert not any(stubborn), f"killed, SIGTERM did not stop them in 60 s: {[p for p in stubborn if p]}"


def _as_a_background_job() -> None:
    """Start as a script's `infra/prefect-*.sh &` does: a non-interactive shell's background job has SIGINT
    ignored, and Prefect's worker stops on SIGTERM by sending itself SIGINT (the scripts restore it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM to the process's group, then up to 60 s to end; past that SIGKILL, and its command is returned."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        return ""
    except ProcessLookupError:
        return ""
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return " ".join(map(str, proc.args))


def _client(api_url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        return get_client(sync_client=True)


def test_deployments_schedules_worker_and_approval(prefect_server, tmp_path: Path, tiny_model_dir: Path) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from lmforge.config import load_config
    from lmforge.registry.promote import promote_to_champion
    from lmforge.registry.register import register_model
    from lmforge.serve.stack import stack_status

    env = prefect_server["env"]
    api = env["PREFECT_API_URL"]
    deployed = subprocess.run(["bash", str(ROOT / "infra" / "prefect-deploy.sh")], env=env, capture_output=True,
                              text=True, timeout=600)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    with _client(api) as client:
        deployments = {f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()}
        assert {"lmforge-pipeline/nightly-retrain", "lmforge-rollout/approved-rollout", "lmforge-pipeline/pipeline",
                "lmforge-data/data", "lmforge-pretrain/pretrain", "lmforge-finetune/finetune",
                "lmforge-distill/distill", "lmforge-register/register", "lmforge-rollout/rollout"} <= set(deployments)
        nightly = deployments["lmforge-pipeline/nightly-retrain"]
        assert nightly.parameters == {"profile": "tiny", "overrides": [], "rollout": False}
        assert [(s.schedule.cron, s.active) for s in nightly.schedules] == [("0 2 * * *", True)]
        assert deployments["lmforge-rollout/approved-rollout"].parameters["require_approval"] is True

        worker = subprocess.Popen(["bash", str(ROOT / "infra" / "prefect-worker.sh")], env=env,
                                  stdout=(tmp_path / "worker.log").open("w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, preexec_fn=_as_a_background_job)
        prefect_server["processes"].insert(0, worker)

        # A stage flow, run by the worker from the deployment with the run's own parameters.
        work = tmp_path / "work"
        run = client.create_flow_run_from_deployment(
            deployments["lmforge-data/data"].id,
            parameters={"profile": "tiny", "overrides": [f"work_dir={work}", "data.max_docs=60",
                                                           "data.max_pairs=200", "data.vocab_size=512"]})

        def finished(run_id=run.id):
            state = client.read_flow_run(run_id).state
            return state if state and state.is_final() else None

        state = _wait(finished, 600, "the data flow run")
        assert state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
        assert (work / "shards" / "manifest.json").is_file()

        # The scheduled rollout pauses for a reviewer; a rejection leaves serving and the registry untouched.
        overrides = ["registry.model_prefix=deploytest", "serve.gateway_port=1", "serve.vllm_port=2"]
        cfg = load_config("tiny", overrides)
        name = cfg.model_name("student")
        gates = {"data": "passed", "distill": "passed"}
        champion = register_model(cfg, "student", tiny_model_dir, {}, gates).version
        promote_to_champion(cfg, name, champion, by="test", reason="first release")
        challenger = register_model(cfg, "student", tiny_model_dir, {}, gates).version
        run = client.create_flow_run_from_deployment(
            deployments["lmforge-rollout/approved-rollout"].id,
            parameters={"overrides": overrides, "require_approval": True, "approval_timeout_s": 600})
        def paused() -> bool:
            state = client.read_flow_run(run.id).state
            assert not (state and state.is_final()), f"the rollout ended without pausing: {state}"
            return bool(state and state.is_paused())

        _wait(paused, 600, "the rollout to pause for approval")
        from prefect.flow_runs import resume_flow_run
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}):
            resume_flow_run(run.id, run_input={"approve": False, "reviewer": "qa", "note": "not this week"})
        state = _wait(lambda: finished(run.id), 300, "the rejected rollout to end")
        assert state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        assert runs[0].state.name == "Completed"
        registry = MlflowClient(tracking_uri=cfg.tracking_uri())
        assert str(registry.get_model_version_by_alias(name, "champion").version) == str(champion)
        rejected = registry.get_model_version(name, challenger).tags
        assert json.loads(rejected["lmforge.rollout"])["reason"] == "rejected by qa: not this week"
        assert "lmforge.approval" not in rejected
        assert not stack_status(cfg)["running"]
