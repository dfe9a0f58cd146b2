"""The registered model: a Hugging Face directory wrapped as an MLflow pyfunc.

The HF directory is stored unchanged under the model's ``artifacts/hf_model/``, so vLLM can serve the files
straight from the registry's artifact location, and ``mlflow.pyfunc.load_model("models:/NAME@champion")``
generates text with Hugging Face for a quick look.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

HF_ARTIFACT = "hf_model"


class HFTextGenerator(mlflow.pyfunc.PythonModel):
    """Greedy chat completion of each input prompt (a list of strings in, a list of strings out)."""

    def __init__(self, max_new_tokens: int = 64):
        self.max_new_tokens = max_new_tokens

    def load_context(self, context: Any) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = context.artifacts[HF_ARTIFACT]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    # No type hint on model_input: MLflow would derive a second signature from it; the logged one rules.
    def predict(self, context, model_input, params=None) -> list[str]:  # noqa: ANN001
        from lmforge.registry.review import generate

        prompts = model_input if isinstance(model_input, list) else list(model_input.iloc[:, 0])
        return generate(self.model, self.tokenizer, prompts, self.max_new_tokens)
