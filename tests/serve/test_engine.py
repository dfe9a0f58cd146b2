"""VLLMEngine without vLLM: the command it builds, model-dir checks, fail-fast on a dying process, stop."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from lmforge.config import ServeConfig, load_config
from lmforge.serve.engine import EngineError, VLLMEngine, check_model_dir


def _engine(model_dir: Path, tmp_path: Path, **cfg: object) -> VLLMEngine:
    return VLLMEngine(model_dir, ["m", "alias"], ServeConfig(**cfg), 8123, tmp_path / "vllm.log")


def test_command_and_environment(tmp_path: Path) -> None:
    engine = _engine(tmp_path, tmp_path, max_model_len=128, kv_cache_gib=0.5)
    cmd = engine.command()
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--served-model-name") + 1:][:2] == ["m", "alias"]
    assert "--enforce-eager" in cmd and cmd[cmd.index("--max-model-len") + 1] == "128"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and engine.base_url == "http://127.0.0.1:8123"
    env = engine.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["HF_HUB_OFFLINE"] == "1" and env["VLLM_HOST_IP"]


def test_cpu_threads_and_stream_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    default = _engine(tmp_path, tmp_path)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in default.environment() and "--stream-interval" not in default.command()
    tuned = _engine(tmp_path, tmp_path, cpu_threads="all", stream_interval=8)
    cores = sorted(os.sched_getaffinity(0))
    assert tuned.environment()["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, cores))
    assert tuned.command()[tuned.command().index("--stream-interval") + 1] == "8"
    assert _engine(tmp_path, tmp_path, cpu_threads="0-1").environment()["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"


def test_cpu_threads_override_of_one_core_is_that_core() -> None:
    """``--set serve.cpu_threads=1`` parses as the number 1; it names core 1, as the list '1' would."""
    assert load_config("tiny", ["serve.cpu_threads=1"]).serve.cpu_threads == "1"
    assert load_config("tiny", ["serve.cpu_threads=0-1"]).serve.cpu_threads == "0-1"


def test_missing_or_invalid_model_dir_fails_before_launch(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        _engine(tmp_path / "nope", tmp_path).start()
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match="config.json missing or invalid"):
        check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineError, match="no weights"):
        check_model_dir(tmp_path)


def _fake_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(b"")
    (model / "tokenizer.json").write_text("{}")
    return model


def test_dying_server_fails_fast_with_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(_fake_model(tmp_path), tmp_path)
    script = "import sys; print('CUDA? no: model failed to load'); sys.exit(3)"
    monkeypatch.setattr(engine, "command", lambda: [sys.executable, "-c", script])
    began = time.monotonic()
    with engine, pytest.raises(EngineError, match="exited with code 3") as err:
        engine.wait_ready(timeout=60)
    assert "model failed to load" in str(err.value) and time.monotonic() - began < 30


def test_stop_ends_the_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(_fake_model(tmp_path), tmp_path)
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    monkeypatch.setattr(engine, "command", lambda: [sys.executable, "-c", script])
    engine.start()
    assert engine.alive() and engine.pid
    with pytest.raises(EngineError, match="did not answer"):
        engine.wait_ready(timeout=0.3)
    engine.stop(timeout=5)
    assert not engine.alive() and engine.pid is None


def test_a_killed_caller_leaves_no_server(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup in the caller; the kernel still ends the server it started (not detached)."""
    import os
    import signal
    import subprocess

    model, pidfile = _fake_model(tmp_path), tmp_path / "server.pid"
    caller = f"""
import sys, time
from pathlib import Path
from lmforge.config import ServeConfig
from lmforge.serve.engine import VLLMEngine
engine = VLLMEngine(Path({str(model)!r}), ["m"], ServeConfig(), 8123, Path({str(tmp_path / "vllm.log")!r}))
engine.command = lambda: [sys.executable, "-c", "import time; time.sleep(120)"]
engine.start()
Path({str(pidfile)!r}).write_text(str(engine.pid))
time.sleep(120)
"""
    proc = subprocess.Popen([sys.executable, "-c", caller])
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "the caller did not start its server"
            time.sleep(0.1)
        server = int(pidfile.read_text())
        assert os.getpgid(server) == server  # its own group, as stop() needs
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while _running(server):
            assert time.monotonic() < deadline, "the server outlived its killed caller"
            time.sleep(0.1)
    finally:
        proc.kill()


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan is reaped by init, maybe later)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_cache_and_batching_settings_reach_vllm(tmp_path: Path) -> None:
    """Each serve setting is one vLLM flag (names checked against vllm 0.32's arg_utils); None adds none."""
    default = _engine(tmp_path, tmp_path).command()
    assert default[default.index("--kv-cache-dtype") + 1] == "auto"
    assert default[default.index("--generation-config") + 1] == "auto"
    assert not any(a in default for a in ("--max-num-seqs", "--max-num-batched-tokens", "--enable-prefix-caching",
                                          "--no-enable-prefix-caching", "--enable-chunked-prefill"))
    tuned = _engine(tmp_path, tmp_path, kv_cache_dtype="fp8", enable_prefix_caching=False, max_num_seqs=32,
                    max_num_batched_tokens=512, enable_chunked_prefill=True, generation_config="vllm")
    cmd = tuned.command()
    assert cmd[cmd.index("--kv-cache-dtype") + 1] == "fp8" and cmd[cmd.index("--max-num-seqs") + 1] == "32"
    assert cmd[cmd.index("--max-num-batched-tokens") + 1] == "512"
    assert "--no-enable-prefix-caching" in cmd and "--enable-chunked-prefill" in cmd
    assert cmd[cmd.index("--generation-config") + 1] == "vllm"
    assert tuned.settings()["max_num_seqs"] == 32 and tuned.settings()["kv_cache_dtype"] == "fp8"
    assert set(tuned.settings()) >= {"kv_cache_gib", "enable_prefix_caching", "enable_chunked_prefill"}


@pytest.mark.integration  # importing vLLM's parser takes ~8 s
def test_serve_flags_parse_with_vllms_own_parser(tmp_path: Path) -> None:
    """The flags the engine builds are ones vLLM's CLI parser accepts, with the values meant."""
    pytest.importorskip("vllm")
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cmd = _engine(tmp_path, tmp_path, kv_cache_dtype="fp8", enable_prefix_caching=False, max_num_seqs=8,
                  max_num_batched_tokens=256, enable_chunked_prefill=False, max_model_len=128).command()
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(cmd[3:])  # after "python -m module"
    assert (args.kv_cache_dtype, args.enable_prefix_caching, args.max_num_seqs) == ("fp8", False, 8)
    assert (args.max_num_batched_tokens, args.enable_chunked_prefill, args.generation_config) == (256, False, "auto")


def test_unchunked_prefill_needs_a_step_as_long_as_the_context() -> None:
    with pytest.raises(ValueError, match="whole prompt must fit one step"):
        ServeConfig(max_model_len=1024, max_num_batched_tokens=512, enable_chunked_prefill=False)
    assert ServeConfig(max_model_len=1024, max_num_batched_tokens=512).max_num_batched_tokens == 512


def test_kv_cache_budget_of_smollm2_and_the_tiny_student() -> None:
    """2 x layers x KV heads x head dim x bytes: SmolLM2-135M (30 layers, 3 KV heads of 64) and tiny's student."""
    from lmforge.serve.kv_cache import kv_cache_budget

    smol = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576}
    fp32 = kv_cache_budget(smol, ServeConfig(kv_cache_gib=1, max_model_len=1024))
    assert (fp32.bytes_per_token, fp32.tokens, fp32.sequences_at_max_len) == (46_080, 23_301, 22)
    bf16 = kv_cache_budget(smol, ServeConfig(dtype="bfloat16", kv_cache_gib=2, max_model_len=1024))
    assert (bf16.bytes_per_token, bf16.sequences_at_max_len) == (23_040, 91)
    assert kv_cache_budget(smol, ServeConfig(kv_cache_dtype="fp8")).bytes_per_token == 11_520
    student = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 64, "max_position_embeddings": 256}
    assert kv_cache_budget(student, ServeConfig()).bytes_per_token == 2 * 2 * 2 * 32 * 4


def test_a_quantised_model_is_served_in_its_activation_dtype(tmp_path: Path) -> None:
    """vLLM's CPU int8/int4 kernels refuse fp32 activations: a compressed-tensors model gets serve.quantized_dtype."""
    model = _fake_model(tmp_path)
    assert _engine(model, tmp_path).command()[_engine(model, tmp_path).command().index("--dtype") + 1] == "float32"
    (model / "config.json").write_text(json.dumps({"model_type": "llama",
                                                   "quantization_config": {"quant_method": "compressed-tensors"}}))
    engine = _engine(model, tmp_path)
    assert engine.command()[engine.command().index("--dtype") + 1] == "bfloat16"
    assert engine.settings()["quantization"] == "compressed-tensors" and engine.settings()["dtype"] == "bfloat16"


def test_a_missing_quantised_kernel_is_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM loads a quantised model, then its worker dies on the first request: the error's first line says why."""
    model = _fake_model(tmp_path)
    (model / "config.json").write_text(json.dumps({"model_type": "llama",
                                                   "quantization_config": {"quant_method": "compressed-tensors"}}))
    engine = _engine(model, tmp_path, quantized_dtype="float16")
    line = 'ERROR [multiproc_executor.py] NotImplementedError: "cpu_gemm_wna16" not implemented for \'Float\''
    script = f"import sys; print({line!r}); sys.exit(1)"
    monkeypatch.setattr(engine, "command", lambda: [sys.executable, "-c", script])
    with engine, pytest.raises(EngineError) as err:
        engine.wait_ready(timeout=60)
    first = str(err.value).splitlines()[0]
    assert first == ('vLLM has no CPU kernel here for this compressed-tensors model: "cpu_gemm_wna16" not '
                     "implemented for 'Float' (serve dtype float16)")
