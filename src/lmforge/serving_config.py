"""The ``serve`` and ``rollout`` sections of a profile: how vLLM and the gateway run, and how a challenger is
rolled out beside the champion. ``lmforge.config`` composes them into ``LMForgeConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lmforge.sections import Section as _Section


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Bind address of vLLM and the gateway.")
    vllm_port: int = Field(8100, description="Port of the vLLM OpenAI server (challenger: +1).")
    gateway_port: int = Field(8000, description="Port of the gateway.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM --tensor-parallel-size: GPUs one replica spans.")
    kv_cache_gib: float = Field(1.0, description="VLLM_CPU_KVCACHE_SPACE in GiB.")
    enforce_eager: bool = Field(True, description="Skip torch.compile in vLLM (faster start on CPU).")
    cpu_threads: str | None = Field(
        None, description="vllm-cpu's compute cores (VLLM_CPU_OMP_THREADS_BIND): 'all' (every core this process "
        "may use), a list such as '0-3', or None (vLLM's own choice: all cores but one, or the environment's "
        "setting). Ignored by CUDA vLLM.")
    stream_interval: int = Field(
        1, ge=1, description="vLLM --stream-interval: tokens per streamed chunk after the first (1: each token; "
        "more costs the API server less per token).")
    dtype: str = Field("float32", description="vLLM --dtype.")
    quantized_dtype: Literal["bfloat16", "float16"] = Field(
        "bfloat16", description="vLLM --dtype of an int8/int4 model: vLLM's CPU kernels take bf16/fp16 only.")
    kv_cache_dtype: Literal["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        "auto", description="vLLM --kv-cache-dtype (auto: the model's; CPU: auto or fp8*, with AVX-512/AMX).")
    enable_prefix_caching: bool | None = Field(
        None, description="vLLM --[no-]enable-prefix-caching: reuse a computed prompt prefix (None: vLLM's, on).")
    max_num_seqs: int | None = Field(None, ge=1, description="vLLM --max-num-seqs: sequences per step (None: 128).")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="vLLM --max-num-batched-tokens (None: 2048).")
    enable_chunked_prefill: bool | None = Field(None, description="vLLM --[no-]enable-chunked-prefill (None: on).")
    generation_config: Literal["auto", "vllm"] = Field(
        "auto", description="vLLM --generation-config: auto: the model's generation_config.json sets defaults.")
    max_model_len: int | None = Field(None, description="vLLM --max-model-len (None: the model's).")
    startup_timeout_s: float = Field(240.0, description="Seconds to wait for vLLM to answer a 1-token probe.")
    policy: Path = Field(Path("configs/policy.yaml"), description="Compliance policy file.")
    max_body_bytes: int = Field(64_000, description="Request bodies above this get 413.")
    max_tokens_limit: int = Field(
        512, description="max_tokens above this gets 400; a request without max_tokens gets what vLLM gives (the "
        "room left in the context), capped at this.")
    rate_limit_rpm: int = Field(600, description="Requests per minute per API key (`lmforge keys create --rpm` sets "
                                                 "one key's own).")
    rate_burst: int = Field(60, description="Most requests one key may send at once (then rate_limit_rpm).")
    rate_limit_storage: str = Field(
        "memory://", description="Where the gateway counts requests (a `limits` storage URI): memory:// (one "
        "gateway process) or redis://HOST:PORT (one limit across every gateway replica).")
    metrics_port: int | None = Field(
        None, description="Serve the gateway's /metrics on this port only. None: on the API port, behind any "
        "valid API key unless metrics_open.")
    metrics_open: bool = Field(False, description="Serve /metrics on the API port without a key.")
    challenger_port: int | None = Field(
        None, description="Port of the challenger's vLLM during a rollout (None: vllm_port + 1). A promoted "
        "challenger keeps its port, so champion and challenger alternate between the two.")
    restart_backoff_s: float = Field(
        1.0, gt=0, description="The stack restarts a vLLM that died after this many seconds, doubling while it "
        "keeps dying within a minute of its start.")
    restart_backoff_max_s: float = Field(60.0, gt=0, description="The longest wait before restarting a dead vLLM.")
    previous_champion_grace_s: float = Field(
        300.0, ge=0, description="Seconds the previous champion's vLLM stays up after a promotion or rollback, so "
        "`lmforge rollback` in that window only switches the gateway; it stops once idle after them (0: at once).")

    @model_validator(mode="after")
    def _whole_prompt_fits_a_step(self) -> ServeConfig:
        """Without chunked prefill a prompt is prefilled in one step: vLLM refuses to start otherwise."""
        tokens, context = self.max_num_batched_tokens, self.max_model_len
        if self.enable_chunked_prefill is False and tokens is not None and context and tokens < context:
            raise ValueError(f"serve.max_num_batched_tokens {tokens} < max_model_len {context}: with "
                             "enable_chunked_prefill false a whole prompt must fit one step")
        return self

    @field_validator("cpu_threads", mode="before")
    @classmethod
    def _core_number_is_a_list(cls, value: object) -> object:
        """``--set serve.cpu_threads=3`` reads as the number 3: it means core 3, as the list '3' does."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RolloutConfig(_Section):
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100], description="Canary traffic % per step.")
    requests_per_step: int = Field(20, description="Requests analysed per step.")
    max_error_rate: float = Field(0.05, description="Canary fails a step above this error rate.")
    max_latency_ratio: float = Field(
        2.0, gt=0, description="A step fails on latency when the challenger is slower by the rank test "
        "(latency_alpha) and its median latency is over this times the champion's.")
    latency_alpha: float = Field(
        0.01, gt=0, lt=1, description="Significance level of the one-sided Mann-Whitney U test that the "
        "challenger's latencies are larger than the champion's.")
    max_violation_rate: float = Field(0.1, description="Compliance violations per response allowed.")
    failure_limit: int = Field(1, description="Failed steps tolerated before rollback.")
    mode: Literal["canary", "shadow"] = Field(
        "canary", description="canary: the challenger answers steps[i] % of requests. shadow: the champion answers "
        "all of them and steps[i] % are also sent to the challenger, whose answers are measured and dropped; "
        "the verdict is acted on the same way.")
    prompts: list[str] = Field(
        default_factory=lambda: [
            "What does the json module do?",
            "Define the noun \"harbor\".",
            "How do I read a file in Python?",
            "Write one sentence about the sea.",
            "Tell me about the state of the union.",
            "What is a list comprehension?",
        ],
        description="The fixed prompts each step sends through the gateway (chat), in a seeded shuffled order.")
    max_tokens: int = Field(32, ge=1, description="max_tokens of each rollout request (greedy).")
    stream_every: int = Field(2, ge=0, description="One in N rollout requests streams (a seeded coin), so "
                                                   "both paths are measured (0: none stream).")
    latency_floor_ms: float = Field(
        50.0, ge=0, description="Latencies are compared as max(latency, this): below it a difference is noise.")
    min_latency_samples: int = Field(
        5, ge=1, description="Latency is judged per kind (streamed, plain) only once the challenger's step and the "
        "champion have this many timed answers of that kind; with 20 requests per step the 10 % step has 2 "
        "challenger answers and is judged on errors and violations only.")
    challenger_policy: Path | None = Field(
        None, description="Compliance policy rolled out with the challenger (None: the champion's, serve.policy); "
        "it becomes the gateway's policy when the challenger is promoted.")
    seed: int = Field(0, description="Seed of the prompt order.")

    @model_validator(mode="after")
    def _steps_are_shares(self) -> RolloutConfig:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or self.steps != sorted(self.steps):
            raise ValueError(f"rollout.steps must be rising percentages in (0, 100], not {self.steps}")
        if not self.prompts:
            raise ValueError("rollout.prompts must not be empty")
        return self
