"""An lm-eval model backend for a model served behind lmforge's gateway (OpenAI chat completions).

    lm_eval.simple_evaluate(model="lmforge-gateway", model_args={"base_url": URL, "model": NAME, "api_key": KEY},
                            tasks=..., apply_chat_template=False)

lm-eval 0.4.13 ships ``local-chat-completions`` for this, but its API models need the ``api`` extra
(``tenacity``), which the lock does not hold; this backend is lm-eval's documented extension point (a
registered ``LM`` subclass) over the ``openai`` client the stack already has. Each prompt is sent as one user
message (the server applies the model's chat template), greedy, with the task's ``max_gen_toks`` and stop
strings. Log-likelihoods are not available from a chat API, so perplexity tasks are refused.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model


@register_model("lmforge-gateway")
class GatewayChatLM(LM):
    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_gen_toks: int = 64,
                 timeout: float = 120.0, **_: Any) -> None:
        super().__init__()
        from openai import OpenAI

        self.model, self.max_gen_toks = model, int(max_gen_toks)
        self.client = OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key or "none", max_retries=2,
                             timeout=float(timeout))

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        answers = []
        for request in requests:
            prompt, gen_kwargs = request.args
            stop = [s for s in gen_kwargs.get("until") or [] if s]
            reply = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0,
                max_tokens=int(gen_kwargs.get("max_gen_toks", self.max_gen_toks)), stop=stop or None)
            answers.append(reply.choices[0].message.content or "")
        return answers

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError("a chat completions API returns no prompt log-probs: score perplexity in-process")

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        raise NotImplementedError("a chat completions API returns no prompt log-probs: score perplexity in-process")
