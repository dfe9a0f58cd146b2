"""Tokenize: train a byte-level BPE on the clean train split and save it in Hugging Face format.

    lmforge data --step tokenize       # clean/ -> tokenizer/ (tokenizer.json, tokenizer_config.json, ...)

``transformers.AutoTokenizer.from_pretrained("runs/<profile>/tokenizer")`` loads the result.
``<|endoftext|>`` is both bos and eos, ``<|pad|>`` pads, and the chat template writes each message as
``<|role|>\\n{content}\\n``, closes assistant turns with ``<|endoftext|>`` and, with
``add_generation_prompt``, opens ``<|assistant|>\\n``.
Validation documents (the same split ``pack`` uses) are never seen by the trainer.

With a pretrained base (``base.source``) no tokenizer is trained: the base's own, with its chat template, is
copied from ``models/base``, since its embeddings only mean something for its own ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.artifacts import atomic_dir, require_complete
from lmforge.config import LMForgeConfig
from lmforge.data.records import read_jsonl, text_fields, val_ids

EOS = "<|endoftext|>"
PAD = "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (EOS, PAD, *ROLE_TOKENS)  # ids 0..4, in this order
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% if message['role'] == 'assistant' %}<|endoftext|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class TokenizerResult:
    vocab_size: int
    eos_id: int
    pad_id: int
    trained_on_docs: int
    trained_on_pairs: int
    path: str


def tokenize(cfg: LMForgeConfig) -> TokenizerResult:
    """Train on the train split of ``clean/`` (prose + pair text); save to ``tokenizer/``; check it loads.
    With a pretrained base, copy the base's tokenizer instead."""
    clean = cfg.paths.clean
    require_complete(clean, "clean data")
    if cfg.base.source is not None:
        return copy_base_tokenizer(cfg)
    counts = {"docs": 0, "pairs": 0}
    texts = _train_texts(clean, cfg.data.seed, cfg.data.val_fraction, counts)
    fast = train_bpe(texts, cfg.data.vocab_size)
    manifest: dict[str, Any] = {"stage": "tokenize", "vocab_size": len(fast), "trained_on": counts,
                                "config": cfg.data.model_dump(mode="json")}
    with atomic_dir(cfg.paths.tokenizer, manifest) as tmp:
        fast.save_pretrained(tmp)
        check_chat_template(tmp)
    return TokenizerResult(vocab_size=len(fast), eos_id=fast.eos_token_id, pad_id=fast.pad_token_id,
                           trained_on_docs=counts["docs"], trained_on_pairs=counts["pairs"],
                           path=str(cfg.paths.tokenizer))


def copy_base_tokenizer(cfg: LMForgeConfig) -> TokenizerResult:
    """``models/base``'s tokenizer files -> ``tokenizer/``, with the ids the packer needs in the manifest."""
    from transformers import AutoTokenizer

    base = cfg.paths.base
    require_complete(base, "base model (run `lmforge base`)")
    tok = AutoTokenizer.from_pretrained(base)
    eos, pad = base_special_ids(tok)
    manifest: dict[str, Any] = {"stage": "tokenize", "vocab_size": len(tok), "from_base": str(base),
                                "eos_id": eos, "pad_id": pad, "config": cfg.data.model_dump(mode="json")}
    with atomic_dir(cfg.paths.tokenizer, manifest) as tmp:
        tok.save_pretrained(tmp)
    return TokenizerResult(vocab_size=len(tok), eos_id=eos, pad_id=pad, trained_on_docs=0, trained_on_pairs=0,
                           path=str(cfg.paths.tokenizer))


def base_special_ids(tok: Any) -> tuple[int, int]:
    """(document separator, pad) of a base's tokenizer: its ``<|endoftext|>`` when it has one (a chat model's
    eos is the end of a turn, not of a document), else its eos; pad falls back to the separator."""
    separator = tok.convert_tokens_to_ids(EOS) if EOS in tok.get_vocab() else tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else separator
    return separator, pad


def train_bpe(texts: Iterator[str], vocab_size: int) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with lmforge's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=list(ROLE_TOKENS), chat_template=CHAT_TEMPLATE)


def check_chat_template(tokenizer_dir: Path) -> None:
    """Load ``tokenizer_dir`` from disk and render one conversation; raise if it does not round-trip.

    ``PreTrainedTokenizerFast`` (``TokenizersBackend`` in transformers 5, the ``tokenizer_class`` saved in
    ``tokenizer_config.json``) is what ``AutoTokenizer`` resolves to; importing it directly skips ~12 s of
    ``transformers.models.auto`` imports. The tests load the directory with ``AutoTokenizer`` itself.
    """
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    text = tok.apply_chat_template(messages, tokenize=False)
    expected = "<|user|>\nHi\n<|assistant|>\nHello\n<|endoftext|>"
    if text != expected or tok.decode(tok.encode("Hello world")) != "Hello world":
        raise RuntimeError(f"tokenizer in {tokenizer_dir} does not round-trip: chat template gave {text!r}")


def _train_texts(clean: Path, seed: int, val_fraction: float, counts: dict[str, int]) -> Iterator[str]:
    for name, key in (("corpus.jsonl", "docs"), ("pairs.jsonl", "pairs")):
        held_out = val_ids(clean / name, seed, val_fraction)
        for record in read_jsonl(clean / name):
            if record["id"] not in held_out:
                counts[key] += 1
                yield "\n".join(record[f] for f in text_fields(record))
