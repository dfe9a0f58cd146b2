"""A model version's sampling defaults: the profile's ``generation`` section, stored in the model directory's
``generation_config.json`` (Hugging Face's file), read back in the OpenAI request's terms.

    apply_generation_settings(model.generation_config, cfg.generation)  # before save_pretrained (export)
    sampling_defaults(model_dir)   # {"temperature": 0.0, "max_tokens": 256, "stop": [...], ...}
    vllm_overrides(model_dir)      # {"temperature": 0.0} for a greedy model: vLLM's --override-generation-config

One file, three readers: vLLM (``--generation-config auto`` makes temperature, top_p, top_k,
repetition_penalty and max_new_tokens its server defaults), the gateway (stop strings and the default
max_tokens, which vLLM does not take from the file) and the eval (``sampling_defaults``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.config import GenerationSettings

if TYPE_CHECKING:  # the serving side reads the file without importing transformers
    from transformers import GenerationConfig

FILE = "generation_config.json"


def apply_generation_settings(generation: GenerationConfig, settings: GenerationSettings) -> GenerationConfig:
    """Write ``settings`` into an HF generation config in HF's terms: greedy is ``do_sample=False`` with no
    sampling knobs (HF refuses to save a temperature beside it); sampling sets each knob."""
    greedy = settings.temperature == 0
    generation.update(
        do_sample=not greedy,
        temperature=None if greedy else settings.temperature,
        top_p=None if greedy else settings.top_p,
        top_k=None if greedy else settings.top_k,
        repetition_penalty=settings.repetition_penalty,
        max_new_tokens=settings.max_tokens,
        stop_strings=list(settings.stop) or None,
    )
    return generation


def sampling_defaults(model_dir: Path) -> dict[str, Any]:
    """The model directory's generation defaults as OpenAI request fields; {} when it has no generation config."""
    path = Path(model_dir) / FILE
    if not path.is_file():
        return {}
    hf = json.loads(path.read_text())
    greedy = not hf.get("do_sample", False)
    defaults: dict[str, Any] = {
        "temperature": 0.0 if greedy else hf.get("temperature", 1.0),
        "top_p": 1.0 if greedy else hf.get("top_p", 1.0),
        "top_k": 0 if greedy else hf.get("top_k", 0),  # HF's default is 50; only an explicit value counts here
        "repetition_penalty": hf.get("repetition_penalty", 1.0),
    }
    if hf.get("max_new_tokens"):
        defaults["max_tokens"] = hf["max_new_tokens"]
    stop = hf.get("stop_strings")
    if stop:
        defaults["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return defaults


def vllm_overrides(model_dir: Path) -> dict[str, Any]:
    """What vLLM cannot read from the file itself: HF's greedy (``do_sample: false``) is vLLM's temperature 0
    (vLLM ignores ``do_sample`` and would otherwise sample at temperature 1)."""
    defaults = sampling_defaults(model_dir)
    return {"temperature": 0.0} if defaults.get("temperature") == 0.0 else {}
