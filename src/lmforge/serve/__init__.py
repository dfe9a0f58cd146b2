"""Serving: the real vLLM OpenAI server (``engine``), the filtering gateway in front of it (``gateway``) and
the two started, probed and recorded together (``stack``). The gateway reaches vLLM over HTTP only."""
