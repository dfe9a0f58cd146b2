"""Distill stage: a student half the teacher's size or less, trained with and without the teacher, then a gate.

    lmforge distill --profile tiny           # or: python -m flows.distill
    run_distill(load_config("tiny"))         # DistillResult; raises GateFailed when the gate fails

Data: both students train on the *pretraining* shards (same windows, steps and seed, same initial weights),
and all three models are scored on the pretraining val split with one protocol
(``lmforge.train.evaluate``). General text is where a small model has most to learn from a teacher's soft
targets, and the one val split keeps teacher, KD student and baseline directly comparable.

The student is a fresh ``distill.student`` or, with ``distill.student_init: teacher_layers``, the teacher
itself with ``student_layers`` of its decoder layers kept (``lmforge.distill.prune``: the contiguous block
whose removal costs least on training text is dropped): both students start from the same weights.

Writes ``models/student`` (KD), ``models/baseline`` (no teacher), ``reports/distill.json`` (perplexities,
decode speeds, gate verdict) and one MLflow run per student (``lmforge.role=student|baseline``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, LlamaForCausalLM

from lmforge import envs, lineage
from lmforge.artifacts import IncompleteArtifactError, require_complete, write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.distill.cache import (
    CacheMismatch,
    TeacherCache,
    build_teacher_cache,
    cache_key,
    describe,
    teacher_collate,
    with_teacher,
)
from lmforge.distill.module import DistillModule
from lmforge.distill.prune import keep_layers, layers_to_keep
from lmforge.train.data import (
    IndexedStream,
    StreamDataModule,
    distill_datamodule,
    fixed_windows,
    load_split,
    read_manifest,
)
from lmforge.train.evaluate import (
    evaluate_perplexity,
    paired_decode_speed,
    perplexity_of,
    response_perplexity,
    unigram_perplexity,
)
from lmforge.train.loop import (
    TrainResult,
    data_hash,
    export_model,
    find_resume_checkpoint,
    fit,
    log_final_metrics,
    log_params,
    mlflow_logger,
    stage_meta,
)
from lmforge.train.model import build_model, count_parameters
from lmforge.train.module import CausalLMModule

MAX_STUDENT_FRACTION = 0.5
DECODE_PROMPTS = 4
DECODE_REPEATS = 5  # timed runs per prompt and model, the models taking turns; the fastest counts
CALIBRATION_WINDOWS = 4  # training windows that choose which teacher layers a student keeps


class GateFailed(RuntimeError):
    """The KD student missed the distillation gate; the message holds the measured figures."""


class StudentTooLarge(ValueError):
    """``distill.student`` has more than half the teacher's parameters."""


@dataclass(frozen=True)
class DistillResult:
    student: TrainResult
    baseline: TrainResult
    report_path: Path
    gate: dict[str, Any]


def run_distill(cfg: LMForgeConfig, tags: dict[str, str] | None = None) -> DistillResult:
    """Train the KD student and the no-KD baseline, measure all three models, apply ``distill.gate``."""
    envs.apply_offline_defaults()
    paths = cfg.paths
    teacher_dir = paths.models / "teacher"
    require_complete(teacher_dir, "teacher model")
    require_complete(paths.shards, "token shards")
    teacher_meta = json.loads((teacher_dir / "lmforge.json").read_text())
    teacher = LlamaForCausalLM.from_pretrained(teacher_dir).eval()
    check_student_size(cfg, teacher)

    keep = choose_student_layers(cfg, teacher)
    trained = {role: train_student(cfg, role, teacher, role == "student", teacher_meta, tags, keep)
               for role in ("student", "baseline")}
    report = measure(cfg, teacher_dir, trained)
    report["gate"] = apply_gate(cfg, report)
    out = paths.reports / "distill.json"
    write_json_atomic(out, report)
    if not report["gate"]["passed"]:
        message = f"distillation gate failed: {report['gate']['reason']} (report: {out})"
        if cfg.distill.gate.on_fail == "raise":
            raise GateFailed(message)
        print(f"lmforge distill: {message}. The student is registered as failed and the teacher stays the "
              "one served.")
    return DistillResult(trained["student"], trained["baseline"], out, report["gate"])


def run_teacher_cache(cfg: LMForgeConfig) -> str:
    """Build (or confirm) the teacher cache the KD student will read; DVC's ``teacher_cache`` stage."""
    envs.apply_offline_defaults()
    paths, train = cfg.paths, cfg.distill.train
    require_complete(paths.models / "teacher", "teacher model")
    teacher = LlamaForCausalLM.from_pretrained(paths.models / "teacher").eval()
    data = distill_datamodule(paths.shards, AutoTokenizer.from_pretrained(paths.tokenizer), train.seq_len,
                              train.batch_size, train.seed, train.val_batches, cfg.distill.sft_share)
    ensure_teacher_cache(cfg, teacher, data.train_item, read_manifest(paths.shards)["vocab_size"])
    return describe(paths.teacher_cache)


def check_student_size(cfg: LMForgeConfig, teacher: LlamaForCausalLM) -> int:
    teacher_params = count_parameters(teacher)
    n = count_parameters(initial_student(cfg, teacher))
    if n > MAX_STUDENT_FRACTION * teacher_params:
        what = (f"distill.student_layers={cfg.distill.student_layers}" if cfg.distill.student_init == "teacher_layers"
                else "distill.student")
        raise StudentTooLarge(f"{what} gives {n:,} parameters, more than {MAX_STUDENT_FRACTION} x the "
                              f"teacher's {teacher_params:,}: shrink it in configs/{cfg.profile}.yaml")
    return n


def initial_student(cfg: LMForgeConfig, teacher: LlamaForCausalLM, keep: list[int] | None = None
                    ) -> LlamaForCausalLM:
    """The student's starting weights (seed torch first): a fresh ``distill.student``, or the teacher's layers
    ``keep`` (``student_layers`` evenly spaced when not given)."""
    section = cfg.distill
    if section.student_init == "teacher_layers":
        try:
            keep = keep or layers_to_keep(teacher, section.student_layers or 1)
        except ValueError as err:
            raise StudentTooLarge(str(err)) from err
        return keep_layers(teacher, keep).train()
    manifest = read_manifest(cfg.paths.shards)
    return build_model(section.student, manifest["vocab_size"], manifest["bos_id"], manifest["eos_id"],
                       manifest["pad_id"])


def choose_student_layers(cfg: LMForgeConfig, teacher: LlamaForCausalLM) -> list[int] | None:
    """With ``student_init: teacher_layers``, the teacher layers both students keep, chosen on training text."""
    section = cfg.distill
    if section.student_init != "teacher_layers":
        return None
    windows = fixed_windows(load_split(cfg.paths.shards, "train"), section.train.seq_len, CALIBRATION_WINDOWS)
    calibration = torch.stack([w["input_ids"] for w in windows])  # (B, T): training text, never val
    keep = layers_to_keep(teacher, section.student_layers or 1, calibration)
    print(f"lmforge distill: the students keep the teacher's layers {keep}")
    return keep


def train_student(cfg: LMForgeConfig, role: str, teacher: LlamaForCausalLM, kd: bool, teacher_meta: dict[str, Any],
                  tags: dict[str, str] | None, keep: list[int] | None = None) -> TrainResult:
    """One student run: KD from ``teacher`` when ``kd``, plain cross-entropy otherwise; same seed, data and
    initial weights."""
    paths, section, train = cfg.paths, cfg.distill, cfg.distill.train
    manifest = read_manifest(paths.shards)
    L.seed_everything(train.seed, verbose=False)  # identical initial weights for student and baseline
    model = initial_student(cfg, teacher, keep)
    teacher = teacher if kd else None
    datamodule = distill_datamodule(paths.shards, AutoTokenizer.from_pretrained(paths.tokenizer), train.seq_len,
                                    train.batch_size, train.seed, train.val_batches, section.sft_share)
    cache_tags = {}
    if teacher is None:
        module = CausalLMModule(model, train)
    elif section.teacher == "cache":
        cache = ensure_teacher_cache(cfg, teacher, datamodule.train_item, manifest["vocab_size"])
        datamodule = CachedTeacherData.around(datamodule, cache)
        module = DistillModule(model, None, section)
        cache_tags = {"lmforge.teacher_cache_md5": lineage.dvc_md5(cache.path)}  # as dvc.lock records it
    else:
        module = DistillModule(model, teacher, section)
    teacher_run = teacher_meta.get("run_id") or ""
    teacher_hash = lineage.model_hash(paths.models / "teacher")
    # The baseline never reads the teacher's outputs, but its tokenizer and chat template come from the teacher
    # directory it is exported with: both roles are keyed on the teacher's content.
    identity = {"stage": "distill", "role": role, "kd": _kd_identity(cfg, kd=teacher is not None),
                "teacher": teacher_hash, "init": f"{section.student_init}-{keep}",
                "data": data_hash(paths.shards), "recipe": train.recipe_digest()}
    ckpt_dir = paths.checkpoints / "distill" / role
    resume, meta = find_resume_checkpoint(ckpt_dir, identity, module, max_steps=train.max_steps)
    run_tags = {**lineage.stage_tags(cfg, "distill"), "lmforge.role": role, "lmforge.teacher_run": teacher_run,
                "lmforge.parent_run": teacher_run, "lmforge.parent_model_hash": teacher_hash,
                "lmforge.teacher": section.teacher if teacher else "none", **cache_tags, **(tags or {})}
    logger = mlflow_logger(cfg, "distill", run_tags, run_name=f"distill-{role}-{cfg.profile}",
                           run_id=meta.get("run_id"))
    log_params(logger, {**section.model_dump(mode="json"), "role": role})
    outcome = fit(module, datamodule, train, ckpt_dir, logger, identity, resume_from=resume)

    val = perplexity_of(module.model.cpu(), AutoTokenizer.from_pretrained(paths.tokenizer), paths.shards, "val",
                        seq_len=train.seq_len, max_tokens=train.ppl_max_tokens)
    metrics = {"val_loss": val["loss"], "val_ppl": val["ppl"], "val_bits_per_byte": val["bits_per_byte"],
               "train_loss": outcome.train_loss, "global_step": outcome.global_step, "wall_s": outcome.wall_s,
               "parameters": count_parameters(module.model)}
    log_final_metrics(logger, metrics, outcome.global_step)
    out = export_model(module.model, paths.models / "teacher", paths.models / role,
                       stage_meta("distill", logger.run_id, section.model_dump(mode="json"), paths.shards, run_tags,
                                  metrics, role=role, teacher_run=teacher_run, parent_model_hash=teacher_hash),
                       generation=cfg.generation)
    return TrainResult(model_dir=out, run_id=logger.run_id, metrics=metrics)


def teacher_cache_key(cfg: LMForgeConfig) -> dict[str, Any]:
    """The inputs a cache must match: teacher weights, data, the distill stream's draws, k and its length."""
    d, train = cfg.distill, cfg.distill.train
    world = (train.devices if isinstance(train.devices, int) else 1) * train.num_nodes
    # Every item the run reads, plus two batches per rank that Lightning's loader may fetch ahead.
    n_items = (train.max_steps * train.accumulate + 2) * train.batch_size * world
    stream = {"seq_len": train.seq_len, "seed": train.seed, "sft_share": d.sft_share, "mixture": "distill"}
    return cache_key(lineage.model_hash(cfg.paths.models / "teacher"), data_hash(cfg.paths.shards), stream, d.top_k,
                     n_items)


def ensure_teacher_cache(cfg: LMForgeConfig, teacher: LlamaForCausalLM, train_item: Any,
                         vocab_size: int) -> TeacherCache:
    """The teacher cache for this run: reused when its key matches, (re)built in one teacher pass otherwise."""
    key, path = teacher_cache_key(cfg), cfg.paths.teacher_cache
    try:
        return TeacherCache(path, key)
    except (FileNotFoundError, IncompleteArtifactError, CacheMismatch) as why:
        print(f"lmforge distill: building the teacher cache ({why})")
    build_teacher_cache(teacher, train_item, key["n_items"], cfg.distill.top_k, path, key, vocab_size,
                        batch_size=cfg.distill.train.batch_size)
    cache = TeacherCache(path, key)
    print(f"lmforge distill: {describe(path)}")
    return cache


class CachedTeacherData(StreamDataModule):
    """The distill stream with each item's cached teacher top-k, batched by ``teacher_collate``."""

    @classmethod
    def around(cls, data: StreamDataModule, cache: TeacherCache) -> CachedTeacherData:
        return cls(with_teacher(data.train_item, cache), data.val_items, data.batch_size, data.pad_id)

    def train_dataloader(self) -> DataLoader:
        stream = IndexedStream(self.train_item, self.start, self.trainer.global_rank, self.trainer.world_size)
        return DataLoader(stream, batch_size=self.batch_size, collate_fn=teacher_collate(self.pad_id))


def _kd_identity(cfg: LMForgeConfig, kd: bool = True) -> str:
    """What a resumable student checkpoint must share: the student shape, its data mix and the KD settings
    (none for the no-KD baseline, so tuning alpha or the temperature does not retrain it)."""
    d = cfg.distill
    if not kd:
        return f"{d.student.digest()}-{d.sft_share}"
    return f"{d.student.digest()}-{d.alpha}-{d.temperature}-{d.kl}-{d.top_k}-{d.sft_share}-{d.teacher}"


def measure(cfg: LMForgeConfig, teacher_dir: Path, trained: dict[str, TrainResult]) -> dict[str, Any]:
    """Val perplexity of teacher, student and baseline (one protocol, the gate's), their response perplexity on
    the instruction val split (reported: the teacher's own domain), decode speed of teacher vs student."""
    paths, seq_len = cfg.paths, cfg.distill.train.seq_len
    max_tokens = cfg.distill.train.ppl_max_tokens
    teacher_val = evaluate_perplexity(teacher_dir, paths.shards, "val", seq_len=seq_len, max_tokens=max_tokens)
    prompts = _decode_prompts(paths.shards)
    speeds = paired_decode_speed({"teacher": teacher_dir, "student": trained["student"].model_dir}, prompts,
                                 cfg.distill.decode_new_tokens, DECODE_REPEATS, reference="teacher")
    report: dict[str, Any] = {
        "teacher": {"val_ppl": teacher_val["ppl"], "val_bits_per_byte": teacher_val["bits_per_byte"],
                    "decode_tok_s": speeds["teacher"],
                    "parameters": count_parameters(LlamaForCausalLM.from_pretrained(teacher_dir))},
        "protocol": {"split": "val", "seq_len": seq_len, "stride": seq_len, "tokens": teacher_val["tokens"],
                     "decode": f"HF generate greedy, batch 1, one thread, {len(prompts)} prompts x "
                               f"{cfg.distill.decode_new_tokens} new tokens, teacher and student taking turns, "
                               f"fastest of {DECODE_REPEATS} per prompt; speedup: median over prompts of the "
                               "per-prompt ratio"},
        "unigram_ppl": unigram_perplexity(paths.shards),
        "data": f"pretraining windows mixed with {cfg.distill.sft_share:.0%} instruction pairs; "
                "perplexity on the pretraining val split (gated), response perplexity on the instruction val split",
    }
    for role, result in trained.items():
        report[role] = {"val_ppl": result.metrics["val_ppl"], "val_bits_per_byte": result.metrics["val_bits_per_byte"],
                        "parameters": result.metrics["parameters"], "run_id": result.run_id}
    for role, model_dir in {"teacher": teacher_dir, **{r: t.model_dir for r, t in trained.items()}}.items():
        report[role]["sft_val_ppl"] = response_perplexity(model_dir, paths.shards, seq_len)["ppl"]
    report["student"]["decode_tok_s"] = speeds["student"]
    report["student"]["decode_speedup"] = speeds["speedup"]["student"]
    return report


def apply_gate(cfg: LMForgeConfig, report: dict[str, Any]) -> dict[str, Any]:
    gate = cfg.distill.gate
    t, s, b = report["teacher"], report["student"], report["baseline"]
    ppl_ratio, speedup = s["val_ppl"] / t["val_ppl"], s["decode_speedup"]
    failures = []
    if ppl_ratio > gate.max_ppl_ratio:
        failures.append(f"student/teacher ppl {s['val_ppl']:.2f}/{t['val_ppl']:.2f} = {ppl_ratio:.3f} > "
                        f"{gate.max_ppl_ratio}")
    if speedup < gate.min_speedup:
        failures.append(f"decode speedup {speedup:.2f} < {gate.min_speedup} (student {s['decode_tok_s']:.1f}, "
                        f"teacher {t['decode_tok_s']:.1f} tok/s)")
    if gate.require_beats_baseline and not s["val_ppl"] < b["val_ppl"]:
        failures.append(f"KD student ppl {s['val_ppl']:.2f} does not beat the no-KD baseline's {b['val_ppl']:.2f}")
    return {"passed": not failures, "reason": "; ".join(failures) or "all checks passed",
            "ppl_ratio": ppl_ratio, "speedup": speedup, "beats_baseline": s["val_ppl"] < b["val_ppl"],
            "thresholds": gate.model_dump(mode="json")}


def _decode_prompts(shards: Path) -> list[str]:
    sft = read_manifest(shards)["sft"]
    lines = (Path(shards) / sft["val"]).read_text().splitlines()
    return [json.loads(line)["prompt"] for line in lines[:DECODE_PROMPTS] if line.strip()]
