"""The quantize stage against a real MLflow store: champion -> quantised versions, gated and tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lmforge.config import LMForgeConfig
from lmforge.quantize.stage import QuantizeGateError, run_quantize
from lmforge.registry.promote import promote_to_champion
from lmforge.registry.register import register_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_each_method_is_a_gated_tagged_version_of_the_champion(stage_cfg: LMForgeConfig,
                                                                tiny_model_dir: Path) -> None:
    cfg = stage_cfg.model_copy(update={
        "registry": stage_cfg.registry.model_copy(update={"model_prefix": "quant"}),
        "quantize": stage_cfg.quantize.model_copy(update={"group_size": 32,
                                                          "min_retention": {"w8a8": 0.98, "w4a16": 2.0}})})
    parent = register_model(cfg, "student", tiny_model_dir, {}, {"data": "passed", "distill": "n/a"})
    promote_to_champion(cfg, parent.name, parent.version, by="test", reason="parent")

    with pytest.raises(QuantizeGateError, match=r"w4a16: retention \d\.\d+ < 2\.0 .* not registered"):
        run_quantize(cfg)  # w4a16 cannot keep 200 %: it fails its gate, w8a8 passes and is registered
    report = json.loads((cfg.paths.reports / "quantize.json").read_text())
    rows = {row["method"]: row for row in report["methods"]}
    assert rows["w8a8"]["passed"] and rows["w8a8"]["retention"] >= 0.98 and rows["w8a8"]["version"] == "2"
    assert not rows["w4a16"]["passed"] and rows["w4a16"]["version"] is None
    assert rows["w8a8"]["weights_mb"] < rows["w8a8"]["parent_weights_mb"]
    version = MlflowClient().get_model_version_by_alias(parent.name, "challenger")
    assert str(version.version) == "2" and version.tags["lmforge.quantize.parent_version"] == parent.version
    assert version.tags["lmforge.quantize.method"] == "w8a8" and version.tags["lmforge.quantize.calibration_hash"]
    assert len(MlflowClient().search_model_versions(f"name='{parent.name}'")) == 2  # w4a16 left no version
