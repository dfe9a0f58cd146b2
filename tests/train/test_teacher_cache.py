"""The teacher's top-k cache: what it stores is the teacher's own top-k, a student batch built from it gives
the online loss, and a cache made for other inputs or too short is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LlamaForCausalLM

from lmforge.artifacts import COMPLETE, IncompleteArtifactError
from lmforge.distill.cache import (
    CacheMismatch,
    TeacherCache,
    build_teacher_cache,
    bytes_per_token,
    cache_key,
    teacher_collate,
    with_teacher,
)
from lmforge.distill.loss import kd_loss, teacher_topk
from lmforge.train.data import distill_datamodule, read_manifest

K, ITEMS = 8, 12


@pytest.fixture(scope="module")
def teacher(tiny_model_dir: Path) -> LlamaForCausalLM:
    return LlamaForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def stream(data_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(data_dir / "tokenizer")
    # Half pretraining windows, half chat pairs: items of different lengths, as the distill stage reads them.
    return distill_datamodule(data_dir / "shards", tokenizer, 32, 4, 0, 1, 0.5).train_item


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory, teacher, stream, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("cache") / "teacher_cache"
    key = cache_key("teacher-h", "data-h", {"seq_len": 32}, K, ITEMS)
    return build_teacher_cache(teacher, stream, ITEMS, K, out, key, read_manifest(data_dir / "shards")["vocab_size"],
                               batch_size=5)  # 5 does not divide 12: a short last batch


def test_cache_holds_the_teachers_topk_for_every_position(cache_dir: Path, teacher, stream) -> None:
    cache = TeacherCache(cache_dir)
    assert cache.n_items == ITEMS
    lengths = {len(stream(i)["input_ids"]) for i in range(ITEMS)}
    assert len(lengths) > 1, "the fixture stream should mix window and pair lengths"
    for i in range(ITEMS):
        ids = stream(i)["input_ids"]
        logprobs, top = cache[i]  # (T, K) each
        assert logprobs.shape == top.shape == (len(ids), K) and logprobs.dtype == torch.float16
        with torch.no_grad():
            full = F.log_softmax(teacher(input_ids=ids[None]).logits[0].float(), dim=-1)  # (T, V)
        # The stored values are the teacher's log-probs at the stored ids, and no other id beats them.
        torch.testing.assert_close(logprobs.float(), full.gather(-1, top), atol=2e-2, rtol=1e-3)
        kth_best = full.topk(K, dim=-1).values[:, -1]
        assert bool((logprobs.float().min(dim=-1).values >= kth_best - 2e-2).all())


def test_kd_loss_from_the_cache_matches_the_online_teacher(cache_dir: Path, teacher, stream, tokenizer) -> None:
    batch = teacher_collate(tokenizer.pad_token_id)([with_teacher(stream, TeacherCache(cache_dir))(i)
                                                     for i in range(4)])
    torch.manual_seed(0)
    student_logits = torch.randn(*batch["input_ids"].shape, len(tokenizer))  # (B, T, V)
    with torch.no_grad():
        online = teacher_topk(teacher(input_ids=batch["input_ids"]).logits, K)
    cached = kd_loss(student_logits, batch["teacher_logprobs"].float(), batch["teacher_ids"], batch["labels"],
                     0.5, 2.0)
    live = kd_loss(student_logits, *online, batch["labels"], 0.5, 2.0)
    torch.testing.assert_close(cached.loss, live.loss, atol=2e-3, rtol=1e-3)


def test_size_per_token_is_what_the_files_hold(cache_dir: Path) -> None:
    cache = TeacherCache(cache_dir)
    tokens, per_token = int(cache.offsets[-1]), bytes_per_token(K, cache.manifest["vocab_size"])
    assert cache.manifest["tokens"] == tokens and cache.manifest["bytes_per_token"] == per_token
    assert bytes_per_token(32, 8192) == 128 and bytes_per_token(32, 100_000) == 192
    payload = (cache_dir / "logprobs.npy").stat().st_size + (cache_dir / "ids.npy").stat().st_size
    assert payload == pytest.approx(tokens * per_token, abs=512)  # + two .npy headers


def test_a_cache_for_other_inputs_or_too_short_is_refused(cache_dir: Path, stream, data_dir: Path, tokenizer,
                                                          tmp_path: Path) -> None:
    wanted = cache_key("another-teacher", "data-h", {"seq_len": 32}, K, ITEMS)
    with pytest.raises(CacheMismatch, match="another-teacher"):
        TeacherCache(cache_dir, wanted)
    with pytest.raises(IndexError, match=f"past the teacher cache's {ITEMS} items"):
        with_teacher(stream, TeacherCache(cache_dir))(ITEMS)
    shorter = distill_datamodule(data_dir / "shards", tokenizer, 16, 4, 0, 1, 0.5).train_item  # other windows
    with pytest.raises(CacheMismatch, match="not for this data"):
        [with_teacher(shorter, TeacherCache(cache_dir))(i) for i in range(ITEMS)]
    half_built = tmp_path / "teacher_cache"
    half_built.mkdir()
    (half_built / "logprobs.npy").write_bytes(b"partial")
    with pytest.raises(IncompleteArtifactError, match="teacher logit cache .* no _COMPLETE"):
        TeacherCache(half_built)
    assert (cache_dir / COMPLETE).is_file()
