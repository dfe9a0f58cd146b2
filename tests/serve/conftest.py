"""Serve-test fixtures: ``fake_vllm``, a small stand-in for vLLM's OpenAI server that answers a canned text,
whole or as SSE in 3-character pieces (like token deltas); ``fake_vllm_factory`` makes as many as needed.
Like vLLM it reports ``max_model_len`` in ``/v1/models`` and refuses a ``max_tokens`` above it (400); it records
each request's body and headers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

ANSWER = "Sure. Write to bob.smith@example.com or call (202) 555-0143. Thanks!"
HAZARD = "Here you go: <script>steal()</script> done."
MAX_MODEL_LEN = 256


@pytest.fixture
def fake_vllm() -> FastAPI:
    return make_fake_vllm()


@pytest.fixture
def fake_vllm_factory() -> Callable[[], FastAPI]:
    """Makes independent fake vLLMs (one per arm of a rollout)."""
    return make_fake_vllm


def make_fake_vllm() -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.headers = []

    @app.get("/health")
    async def health() -> dict:
        return {}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": MAX_MODEL_LEN}]}

    async def answer(request: Request, kind: str):  # noqa: ANN202
        body = await request.json()
        app.state.requests.append(body)
        app.state.headers.append(dict(request.headers))
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > MAX_MODEL_LEN:
            message = f"max_tokens={body['max_tokens']} cannot be greater than max_model_len={MAX_MODEL_LEN}."
            return JSONResponse({"error": {"message": message, "type": "BadRequestError"}}, 400)
        prompt = json.dumps(body.get("messages") or body.get("prompt"))
        text = HAZARD if "hazard" in prompt else ANSWER
        if "upstream-400" in prompt:
            return JSONResponse({"error": {"message": "prompt too long", "type": "BadRequestError"}}, 400)
        obj = "chat.completion" if kind == "chat" else "text_completion"
        if not body.get("stream"):
            choice = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if kind == "chat"
                else {"index": 0, "text": text, "finish_reason": "stop"}
            )
            return {"id": "x1", "object": obj, "created": 1, "model": body["model"], "choices": [choice]}

        def events():  # noqa: ANN202
            head = {"id": "x1", "object": f"{obj}.chunk", "created": 1, "model": body["model"]}
            if kind == "chat":
                yield _sse(
                    {
                        **head,
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                        ],
                    }
                )
            for i in range(0, len(text), 3):
                piece = text[i : i + 3]
                last = i + 3 >= len(text)
                choice = (
                    {"index": 0, "delta": {"content": piece}}
                    if kind == "chat"
                    else {"index": 0, "text": piece}
                )
                yield _sse({**head, "choices": [{**choice, "finish_reason": "stop" if last else None}]})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):  # noqa: ANN202
        return await answer(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):  # noqa: ANN202
        return await answer(request, "completion")

    return app


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"
