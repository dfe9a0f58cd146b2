"""Config sections of inference: a version's generation defaults and the quantize stage (``cfg.generation``,
``cfg.quantize``); loaded with the rest of the profile by ``lmforge.config.load_config``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lmforge.sections import Section


class QuantizeConfig(Section):
    """Post-training quantisation of the served role's champion (lmforge.quantize), each method a new version."""

    methods: list[Literal["w8a8", "w4a16"]] = Field(
        default_factory=lambda: ["w8a8", "w4a16"], description="w8a8: int8 weights per output channel, int8 "
        "activations per token at run time; w4a16: int4 weights in groups of group_size, bf16 activations.")
    group_size: int = Field(128, ge=2, description="Input columns sharing one int4 scale (w4a16).")
    min_retention: dict[str, float] = Field(
        default_factory=lambda: {"w8a8": 0.98, "w4a16": 0.95},
        description="Gate per method: quantised score / parent score (today: parent ppl / quantised ppl).")
    eval_tokens: int = Field(16_384, ge=256, description="Validation tokens scored for the retention gate.")


class GenerationSettings(Section):
    """The sampling defaults a model version ships with: written into its ``generation_config.json`` at export,
    shown in its model card, made vLLM's server defaults, and used by the eval. A request may override each
    (max_tokens up to ``serve.max_tokens_limit``)."""

    temperature: float = Field(0.0, ge=0, description="Softmax temperature; 0: greedy (the argmax token).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: keep the most likely tokens up to this "
                         "probability mass (1: all). Ignored when greedy.")
    top_k: int = Field(0, ge=0, description="Sample among the k most likely tokens (0: all). Ignored when greedy.")
    repetition_penalty: float = Field(1.0, gt=0, description="Divide the logits of tokens already in the prompt "
                                      "or output by this (1: off; 1.1-1.3 curbs loops of small models).")
    max_tokens: int = Field(256, ge=1, description="New tokens when a request names none.")
    stop: list[str] = Field(default_factory=list, description="Strings that end generation (not included in the "
                            "output); the gateway adds them to requests that name none.")
