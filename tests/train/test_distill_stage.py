"""The distill stage on tiny fixtures: both students exported and logged, the report, the gate, the size check."""

from __future__ import annotations

import json

import mlflow
import pytest
from transformers import AutoModelForCausalLM

from lmforge import lineage
from lmforge.config import LMForgeConfig, load_config
from lmforge.distill.stage import GateFailed, StudentTooLarge, _kd_identity, run_distill
from lmforge.train.finetune import run_finetune
from lmforge.train.pretrain import run_pretrain


def _with_gate(cfg: LMForgeConfig, **gate) -> LMForgeConfig:
    distill = cfg.distill.model_copy(update={"gate": cfg.distill.gate.model_copy(update=gate)})
    return cfg.model_copy(update={"distill": distill})


@pytest.fixture
def teacher_cfg(stage_cfg: LMForgeConfig) -> LMForgeConfig:
    run_pretrain(stage_cfg)
    run_finetune(stage_cfg)
    return stage_cfg


@pytest.mark.slow
def test_tuning_kd_settings_resumes_the_baseline_but_not_the_kd_student() -> None:
    cfg = load_config("tiny")
    tuned = load_config("tiny", ["distill.alpha=0.3", "distill.temperature=4.0"])
    assert _kd_identity(cfg, kd=False) == _kd_identity(tuned, kd=False)  # the no-KD run never reads them
    assert _kd_identity(cfg) != _kd_identity(tuned)
    wider = load_config("tiny", ["distill.sft_share=0.2"])
    assert _kd_identity(cfg, kd=False) != _kd_identity(wider, kd=False)  # its data mix


def test_distill_exports_both_students_and_reports(teacher_cfg: LMForgeConfig) -> None:
    cfg = _with_gate(teacher_cfg, max_ppl_ratio=100.0, min_speedup=0.0, require_beats_baseline=False)
    result = run_distill(cfg, tags={"lmforge.git_commit": "abc"})
    report = json.loads((cfg.paths.reports / "distill.json").read_text())
    assert result.gate["passed"] and report["gate"]["passed"]
    for role in ("teacher", "student", "baseline"):
        assert report[role]["val_ppl"] > 1 and report[role]["sft_val_ppl"] > 1
    assert report["student"]["parameters"] == report["baseline"]["parameters"] <= report["teacher"]["parameters"] / 2
    assert report["student"]["decode_tok_s"] > 0 and report["teacher"]["decode_tok_s"] > 0
    teacher_run = json.loads((cfg.paths.models / "teacher" / "lmforge.json").read_text())["run_id"]
    client = mlflow.MlflowClient(cfg.tracking_uri())
    for role, trained in (("student", result.student), ("baseline", result.baseline)):
        assert (cfg.paths.models / role / "_COMPLETE").is_file()
        AutoModelForCausalLM.from_pretrained(cfg.paths.models / role)
        tags = client.get_run(trained.run_id).data.tags
        assert (tags["lmforge.stage"], tags["lmforge.role"], tags["lmforge.teacher_run"]) == ("distill", role,
                                                                                             teacher_run)
    assert "train/kd" in client.get_run(result.student.run_id).data.metrics
    # The KD student read the teacher cache (one teacher pass), named by the hash DVC records for it.
    student_tags = client.get_run(result.student.run_id).data.tags
    assert student_tags["lmforge.teacher"] == "cache"
    assert student_tags["lmforge.teacher_cache_md5"] == lineage.dvc_md5(cfg.paths.teacher_cache)
    assert "train/kd" not in client.get_run(result.baseline.run_id).data.metrics


@pytest.mark.slow
def test_failed_gate_raises_with_the_figures_and_still_writes_the_report(teacher_cfg: LMForgeConfig) -> None:
    cfg = _with_gate(teacher_cfg, min_speedup=1000.0)
    with pytest.raises(GateFailed, match=r"decode speedup .* < 1000.0 \(student .* tok/s\)"):
        run_distill(cfg)
    report = json.loads((cfg.paths.reports / "distill.json").read_text())
    assert report["gate"]["passed"] is False and "speedup" in report["gate"]["reason"]


@pytest.mark.slow
def test_keep_teacher_reports_a_failed_gate_and_serves_the_teacher(teacher_cfg: LMForgeConfig) -> None:
    from lmforge.registry.stage import served_role

    cfg = _with_gate(teacher_cfg, min_speedup=1000.0, on_fail="keep_teacher")
    cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"serve_role": "auto"})})
    result = run_distill(cfg)  # no GateFailed: the run goes on
    assert result.gate["passed"] is False and "speedup" in result.gate["reason"]
    assert served_role(cfg) == "teacher"
    passing = _with_gate(cfg, min_speedup=0.0, max_ppl_ratio=1e9, require_beats_baseline=False)
    run_distill(passing)
    assert served_role(passing) == "student"


def test_student_layers_are_evenly_spaced_or_the_cheapest_block_drop() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmforge.distill.prune import keep_layers, layers_to_keep

    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=7,
                                           num_attention_heads=2, num_key_value_heads=2, eos_token_id=1,
                                           pad_token_id=1, bos_token_id=0)).eval()
    assert layers_to_keep(teacher, 3) == [0, 3, 6]
    ids = torch.randint(0, 64, (2, 16))
    chosen = layers_to_keep(teacher, 3, calibration=ids)
    candidates = [[0, 5, 6], [0, 1, 6]]  # drop 4 contiguous layers, the first and the last kept
    losses = {tuple(c): float(keep_layers(teacher, c)(input_ids=ids, labels=ids).loss) for c in candidates}
    assert chosen[0] == 0 and chosen[-1] == 6 and losses[tuple(chosen)] == min(losses.values())

    student = keep_layers(teacher, [0, 3, 6])
    assert student.config.num_hidden_layers == 3 and teacher.config.num_hidden_layers == 7
    for mine, theirs in zip(student.model.layers, [teacher.model.layers[i] for i in (0, 3, 6)], strict=True):
        assert torch.equal(mine.mlp.up_proj.weight, theirs.mlp.up_proj.weight) and mine is not theirs
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1, 2]
    tokens = torch.tensor([[0, 5, 9, 12]])
    with torch.no_grad():  # cached decoding agrees with a full forward: the KV cache is indexed right
        full = student(tokens).logits[0, -1]
        cache = student(tokens[:, :-1], use_cache=True).past_key_values
        step = student(tokens[:, -1:], past_key_values=cache).logits[0, -1]
    assert torch.allclose(full, step, atol=1e-5)
    with pytest.raises(ValueError, match=r"student_layers must be in \[1, 6\]"):
        layers_to_keep(teacher, 7)


@pytest.mark.slow
def test_teacher_layers_over_half_the_teacher_are_refused(teacher_cfg: LMForgeConfig) -> None:
    distill = teacher_cfg.distill.model_copy(update={"student_init": "teacher_layers", "student_layers": 1})
    with pytest.raises(StudentTooLarge, match="student_layers=1 gives .* more than 0.5 x the teacher"):
        run_distill(teacher_cfg.model_copy(update={"distill": distill}))


@pytest.mark.slow
def test_a_student_over_half_the_teacher_is_refused(teacher_cfg: LMForgeConfig) -> None:
    big = teacher_cfg.distill.student.model_copy(update={"hidden_size": 32, "num_layers": 2, "intermediate_size": 64})
    cfg = teacher_cfg.model_copy(update={"distill": teacher_cfg.distill.model_copy(update={"student": big})})
    with pytest.raises(StudentTooLarge, match="more than 0.5 x the teacher"):
        run_distill(cfg)
