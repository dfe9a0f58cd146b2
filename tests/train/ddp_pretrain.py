"""Driver for ``test_ddp.py``: the pretrain stage from a config file, recording what each rank trained on.

    python tests/train/ddp_pretrain.py CONFIG.json OUT_DIR

Lightning's ``ddp`` launcher starts the other ranks by running the command that started rank 0 again (with
``LOCAL_RANK`` set), so DDP must start from a script like this one: run inside pytest it would start pytest
again. Each rank writes ``OUT_DIR/rank<r>.pt`` (the ``input_ids`` of every batch it trained on, its rank and
the world size); rank 0 also writes ``OUT_DIR/result.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from lmforge.config import LMForgeConfig
from lmforge.train.pretrain import run_pretrain


class RecordBatches(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        self.rows.append(batch["input_ids"].cpu())  # (B, T)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        record = {"input_ids": torch.cat(self.rows), "rank": trainer.global_rank, "world_size": trainer.world_size}
        torch.save(record, self.out / f"rank{trainer.global_rank}.pt")


def main(config_path: str, out_dir: str) -> None:
    cfg = LMForgeConfig.model_validate_json(Path(config_path).read_text())
    out = Path(out_dir)
    result = run_pretrain(cfg, callbacks=[RecordBatches(out)])
    if result.metrics:  # rank 0: the only rank that evaluates and exports
        (out / "result.json").write_text(json.dumps({"run_id": result.run_id, "metrics": result.metrics}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
