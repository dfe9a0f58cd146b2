"""Scale-out: pretraining with Lightning DDP on two CPU processes (gloo), from the config's own fields.

The stage runs in a subprocess (``ddp_pretrain.py``) because the ``ddp`` strategy's launcher starts rank 1
by running rank 0's command line again: from inside pytest that would be a second pytest session.
``ddp_spawn`` would run in-process, but it pickles the trainer into fresh processes and hands back only the
weights, so the stage would lose ``global_step`` and the throughput it reports; ``ddp`` is also what a
multi-device profile uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from transformers import AutoModelForCausalLM

from lmforge.config import LMForgeConfig
from lmforge.train.data import RandomWindows, load_split

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DRIVER = Path(__file__).with_name("ddp_pretrain.py")


def test_pretrain_on_two_ddp_processes_splits_the_data_and_exports_once(stage_cfg: LMForgeConfig,
                                                                         tmp_path: Path) -> None:
    train = stage_cfg.pretrain.train.model_copy(update={
        "strategy": "ddp", "accelerator": "cpu", "devices": 2, "num_nodes": 1,
        "max_steps": 4, "val_every": 2, "ckpt_every": 2})
    cfg = stage_cfg.model_copy(update={"profile": "ddp", "pretrain": stage_cfg.pretrain.model_copy(
        update={"train": train})})
    (tmp_path / "config.json").write_text(cfg.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks share the cores: no oversubscription
    proc = subprocess.run([sys.executable, str(DRIVER), str(tmp_path / "config.json"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    # Rank r trained on stream items r, r + 2, r + 4 ...: disjoint shares of one seeded stream.
    windows = RandomWindows(load_split(cfg.paths.shards, "train"), train.seq_len, train.seed)
    items = train.max_steps * train.batch_size  # per rank
    seen = []
    for rank in (0, 1):
        record = torch.load(tmp_path / f"rank{rank}.pt")
        assert (record["rank"], record["world_size"]) == (rank, 2)
        expected = torch.stack([windows(k * 2 + rank)["input_ids"] for k in range(items)])  # (items, T)
        assert torch.equal(record["input_ids"], expected)
        seen.append({tuple(row.tolist()) for row in record["input_ids"]})
    assert not seen[0] & seen[1]

    # Finished and exported once, by rank 0, into one MLflow run.
    out = cfg.paths.models / "pretrain"
    result = json.loads((tmp_path / "result.json").read_text())
    meta = json.loads((out / "lmforge.json").read_text())
    assert (out / "_COMPLETE").is_file() and meta["run_id"] == result["run_id"]
    assert meta["metrics"]["global_step"] == train.max_steps
    assert (cfg.paths.checkpoints / "pretrain" / f"step={train.max_steps:06d}.ckpt").is_file()
    AutoModelForCausalLM.from_pretrained(out)
    client = mlflow.MlflowClient(cfg.tracking_uri())
    experiment = client.get_experiment_by_name(cfg.registry.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'pretrain-ddp'")
    assert [r.info.run_id for r in runs] == [result["run_id"]]  # rank 1 opened no run of its own
    assert runs[0].info.status == "FINISHED" and "final/val_ppl" in runs[0].data.metrics
