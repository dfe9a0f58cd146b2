"""Every working path of one profile, derived from its ``work_dir`` (``cfg.paths``), so no stage spells a path."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Paths(BaseModel):
    """Every working path of one profile, derived from ``work_dir``."""

    model_config = ConfigDict(frozen=True)
    work_dir: Path

    @property
    def raw(self) -> Path:
        return self.work_dir / "raw"

    @property
    def clean(self) -> Path:
        return self.work_dir / "clean"

    @property
    def validation(self) -> Path:
        return self.work_dir / "validation"

    @property
    def tokenizer(self) -> Path:
        return self.work_dir / "tokenizer"

    @property
    def shards(self) -> Path:
        return self.work_dir / "shards"

    @property
    def base(self) -> Path:
        return self.work_dir / "models" / "base"

    @property
    def models(self) -> Path:
        return self.work_dir / "models"

    @property
    def checkpoints(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def teacher_cache(self) -> Path:
        return self.work_dir / "teacher_cache"

    @property
    def reports(self) -> Path:
        return self.work_dir / "reports"

    @property
    def eval_set(self) -> Path:
        return self.work_dir / "eval"
