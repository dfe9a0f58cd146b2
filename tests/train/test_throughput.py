"""Throughput tracking: the FLOPs formula, MFU against a configured or measured peak, the progress-bar switch,
and the sample-generation tables a stage leaves in MLflow."""

from __future__ import annotations

import io
import json
from pathlib import Path

import lightning as L
import mlflow
import pytest

from lmforge.config import LMForgeConfig, ModelConfig, TrainConfig
from lmforge.train.data import pretrain_datamodule, read_manifest
from lmforge.train.finetune import run_finetune
from lmforge.train.flops import RateMeter, TokenFlops, machine_peak_flops, matmul_parameters, measure_matmul_flops
from lmforge.train.loop import build_trainer, progress_bar_enabled
from lmforge.train.model import build_model
from lmforge.train.module import CausalLMModule
from lmforge.train.pretrain import run_pretrain

SHAPE = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64, max_seq_len=64)


def test_flops_per_token_is_6n_plus_attention_and_counts_the_head_once() -> None:
    tied = build_model(SHAPE, vocab_size=100, bos_id=0, eos_id=0, pad_id=1)
    untied = build_model(SHAPE.model_copy(update={"tie_embeddings": False}), 100, 0, 0, 1)
    # Per layer: q, k, v, o (4 d^2) + gate, up, down (3 d f) + 2 norms; plus the final norm and the head (V d).
    layer = 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32
    n = 2 * layer + 32 + 100 * 32
    assert matmul_parameters(tied) == matmul_parameters(untied) == n  # the input table is a lookup either way
    flops = TokenFlops.of(tied)
    assert (flops.layers, flops.heads, flops.head_dim) == (2, 2, 16)
    assert flops(16) == 6 * n + 12 * 2 * 2 * 16 * 16


def test_rate_meter_sums_steps_into_rates() -> None:
    meter = RateMeter()
    assert meter.rates(1e9) == {}
    meter.add(tokens=100, flops=1_000, seconds=0.5)
    meter.add(tokens=300, flops=3_000, seconds=1.5)
    assert meter.rates(None) == {"tokens_per_s": 200.0, "flops_per_s": 2_000.0, "flops_per_token": 10.0}
    assert meter.rates(4_000.0)["mfu"] == 0.5


def test_measured_matmul_peak_is_a_plausible_rate() -> None:
    assert 1e8 < measure_matmul_flops("cpu", size=256, repeats=2) < 1e14


def test_machine_peak_is_the_best_measurement_this_machine_has_shown(tmp_path) -> None:
    record = tmp_path / "state" / "peak_flops.json"
    assert machine_peak_flops("cpu", record, measure=lambda: 2e9) == 2e9  # none before: this one
    assert machine_peak_flops("cpu", record, measure=lambda: 5e8) == 2e9  # measured on busy cores: the best
    assert machine_peak_flops("cpu", record, measure=lambda: 3e9) == 3e9  # a better one replaces it
    assert list(json.loads(record.read_text()).values()) == [3e9]
    record.write_text("{not json")
    assert machine_peak_flops("cpu", record, measure=lambda: 1e9) == 1e9  # an unreadable record is replaced
    assert list(json.loads(record.read_text()).values()) == [1e9]


def _fit(cfg: LMForgeConfig, **train_update) -> tuple[L.Trainer, CausalLMModule]:
    train = cfg.pretrain.train.model_copy(update={"max_steps": 4, "val_every": 1000, "ckpt_every": 1000,
                                                  **train_update})
    manifest = read_manifest(cfg.paths.shards)
    L.seed_everything(train.seed, verbose=False)
    module = CausalLMModule(build_model(cfg.pretrain.model, manifest["vocab_size"], 0, 0, manifest["pad_id"]), train)
    dm = pretrain_datamodule(cfg.paths.shards, train.seq_len, train.batch_size, train.seed, 1, manifest["pad_id"])
    trainer = build_trainer(train, cfg.paths.checkpoints / "t", logger=False)
    trainer.fit(module, datamodule=dm)
    return trainer, module


def test_each_step_logs_flops_and_mfu_against_the_configured_peak(stage_cfg: LMForgeConfig) -> None:
    trainer, module = _fit(stage_cfg, peak_flops=1e12)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    per_token = module.token_flops(stage_cfg.pretrain.train.seq_len)
    assert m["train/flops_per_s"] == pytest.approx(m["train/tokens_per_s"] * per_token, rel=1e-5)
    assert m["train/mfu"] == pytest.approx(m["train/flops_per_s"] / 1e12, rel=1e-5)
    summary = module.throughput()
    assert summary["peak_flops"] == 1e12 and summary["flops_per_token"] == per_token
    assert summary["mfu"] == pytest.approx(summary["flops_per_s"] / 1e12)


def test_mfu_uses_the_measured_matmul_peak_when_none_is_configured_and_zero_turns_it_off(
        stage_cfg: LMForgeConfig) -> None:
    _, module = _fit(stage_cfg)
    assert module.peak_flops > 1e8 and 0 < module.throughput()["mfu"]
    trainer, module = _fit(stage_cfg, peak_flops=0)
    assert "train/mfu" not in trainer.callback_metrics and "mfu" not in module.throughput()
    assert "train/flops_per_s" in trainer.callback_metrics


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("setting", "tty", "expected"),
                         [(None, True, True), (None, False, False), (True, False, True), (False, True, False)])
def test_progress_bar_follows_the_config_else_the_terminal(monkeypatch: pytest.MonkeyPatch, setting: bool | None,
                                                           tty: bool, expected: bool) -> None:
    monkeypatch.setattr("sys.stderr", _Stream(tty))
    assert progress_bar_enabled(TrainConfig(progress_bar=setting)) is expected


@pytest.mark.slow
def test_stages_log_sample_tables_and_throughput(stage_cfg: LMForgeConfig, tmp_path) -> None:
    pre, fine = run_pretrain(stage_cfg), run_finetune(stage_cfg)
    client = mlflow.MlflowClient(stage_cfg.tracking_uri())
    for result, stage, section in ((pre, "pretrain", stage_cfg.pretrain), (fine, "finetune", stage_cfg.finetune)):
        path = client.download_artifacts(result.run_id, f"samples/{stage}.json", str(tmp_path))
        table = json.loads(Path(path).read_text())  # pandas "split" layout: columns, data
        rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
        assert [r["prompt"] for r in rows] == section.sample_prompts
        assert all(r["step"] == result.metrics["global_step"] and isinstance(r["completion"], str) for r in rows)
        logged = client.get_run(result.run_id).data.metrics
        assert {"train/tokens_per_s", "train/flops_per_s", "train/mfu", "final/mfu"} <= set(logged)
        assert result.metrics["mfu"] > 0 and logged["final/mfu"] == pytest.approx(result.metrics["mfu"])
    vocab = read_manifest(stage_cfg.paths.shards)["vocab_size"]
    per_token = TokenFlops.of(build_model(stage_cfg.pretrain.model, vocab, 0, 0, 1))(stage_cfg.pretrain.train.seq_len)
    assert json.loads((pre.model_dir / "lmforge.json").read_text())["metrics"]["flops_per_token"] == per_token
