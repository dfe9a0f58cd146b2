"""Every shipped profile loads; overrides apply; bad config fails with a readable reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmforge.config import available_profiles, load_config


@pytest.mark.parametrize("profile", available_profiles())
def test_every_profile_loads(profile: str) -> None:
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.paths.work_dir.name == profile
    teacher, student = cfg.pretrain.model, cfg.distill.student
    assert student.hidden_size * student.num_layers < teacher.hidden_size * teacher.num_layers


def test_profiles_include_the_three_documented_ones() -> None:
    assert {"tiny", "small", "gpu"} <= set(available_profiles())


def test_override_sets_nested_field_and_parses_yaml_values() -> None:
    cfg = load_config("tiny", ["pretrain.train.max_steps=7", "distill.kl=reverse", "data.max_docs=null"])
    assert cfg.pretrain.train.max_steps == 7
    assert cfg.distill.kl == "reverse"
    assert cfg.data.max_docs is None


def test_override_changes_only_its_section_digest() -> None:
    base, changed = load_config("tiny"), load_config("tiny", ["pretrain.train.lr=0.01"])
    assert base.pretrain.digest() != changed.pretrain.digest()
    assert base.data.digest() == changed.data.digest()


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="no_such_field"):
        load_config("tiny", ["pretrain.train.no_such_field=1"])


def test_malformed_override_and_missing_profile() -> None:
    with pytest.raises(ValueError, match="section.field=value"):
        load_config("tiny", ["pretrain.train.max_steps"])
    with pytest.raises(FileNotFoundError, match="no profile 'nope'"):
        load_config("nope")


def test_student_must_be_smaller_than_teacher() -> None:
    with pytest.raises(ValidationError, match="smaller"):
        load_config("tiny", ["distill.student.hidden_size=128", "distill.student.num_layers=4"])


def test_config_is_frozen() -> None:
    cfg = load_config("tiny")
    with pytest.raises(ValidationError):
        cfg.pretrain.train.max_steps = 1  # type: ignore[misc]


@pytest.mark.parametrize("profile", available_profiles())
def test_every_profile_model_is_servable_by_vllm_cpu(profile: str) -> None:
    # vLLM's CPU attention supports only these head sizes; a model outside them loads, then dies on a request.
    from lmforge.serve.engine import CPU_HEAD_SIZES

    cfg = load_config(profile)
    # A profile with a pretrained base takes the base's shapes (SmolLM2: head size 64), not pretrain.model's,
    # and a student made of the teacher's layers takes the teacher's.
    built = [cfg.pretrain.model] if cfg.base.source is None else []
    built += [cfg.distill.student] if cfg.distill.student_init == "random" else []
    for model in built:
        assert model.head_dim in CPU_HEAD_SIZES, (profile, model)


def test_heads_must_divide_width() -> None:
    with pytest.raises(ValidationError, match="must divide"):
        load_config("tiny", ["pretrain.model.num_heads=3"])


def test_a_checkpoint_resumes_only_the_same_recipe() -> None:
    base = load_config("tiny").finetune.train
    assert load_config("tiny", ["finetune.train.max_steps=999"]).finetune.train.recipe_digest() == base.recipe_digest()
    assert load_config("tiny", ["finetune.train.lr=0.1"]).finetune.train.recipe_digest() != base.recipe_digest()
