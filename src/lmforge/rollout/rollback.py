"""Put the previous champion back, on demand, without failing a request: ``lmforge rollback MODEL``.

    rollback(cfg, "lmforge-tiny-student", by="alice", reason="v4 answers worse")
    # {"model", "from_version": "4", "to_version": "3", "warm": True, "seconds": 0.4, "promotion": {...}, ...}

1. The previous champion is the version ``champion`` pointed at before its last move (the promotion log).
2. When the profile's stack serves the current champion: make sure the previous champion's vLLM answers a
   1-token completion (after a promotion it is kept warm for ``serve.previous_champion_grace_s``, so this is
   instant; otherwise it is started now on the other vLLM port), move the alias (promotion log, like any move),
   switch the gateway to it over the admin API (requests in flight finish on the old vLLM, new ones go to the
   new one), and keep the old champion warm in turn: a rollback of the rollback is instant too. It stops once
   idle after the grace period.
3. Otherwise only the alias moves: the next ``lmforge serve`` serves it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from lmforge.config import LMForgeConfig
from lmforge.registry.promote import previous_champion, rollback_champion
from lmforge.rollout.champion import champion_version, fetch_version, serves
from lmforge.serve.admin import AdminClient
from lmforge.serve.engine import deep_probe
from lmforge.serve.handover import adopt_engine, forget_previous, start_challenger, warm_previous
from lmforge.serve.stack import admin_key, challenger_port, champion_port, record_challenger, stack_status, vllm_key

log = logging.getLogger("lmforge.rollout")


def rollback(cfg: LMForgeConfig, model: str, by: str, reason: str) -> dict[str, Any]:
    current = champion_version(cfg, model)
    target = previous_champion(cfg, model)
    if target is None:
        raise LookupError(f"{model} has no previous champion in its promotion log: nothing to roll back to")
    report: dict[str, Any] = {"model": model, "from_version": current, "to_version": target}
    if model != cfg.model_name(cfg.registry.serve_role) or not serves(cfg, model, current):
        move = rollback_champion(cfg, model, by, reason)
        return {**report, "served": False, "promotion": asdict(move)}
    began = time.monotonic()
    vllm_url, pid, warm = _ready_vllm(cfg, model, target)
    move = rollback_champion(cfg, model, by, reason)  # the registry first: it is what every later start serves
    admin = AdminClient(stack_status(cfg)["gateway_url"], admin_key(cfg))
    try:
        admin.set_route(0, "canary", challenger={"upstream_url": vllm_url, "model_version": target})
        admin.promote()  # atomic in the gateway: each request goes to one or the other, none is refused
    finally:
        admin.close()
    old_stopped = adopt_engine(cfg, vllm_url, pid, target)
    seconds = round(time.monotonic() - began, 1)
    log.info("rolled %s back from v%s to v%s in %.1f s (%s)", model, current, target, seconds,
             "warm" if warm else "started")
    return {**report, "served": True, "warm": warm, "seconds": seconds, "vllm_url": vllm_url,
            "old_champion_stopped": old_stopped, "previous_champion": warm_previous(cfg),
            "promotion": asdict(move)}


def _ready_vllm(cfg: LMForgeConfig, model: str, version: str) -> tuple[str, int, bool]:
    """A vLLM serving ``version`` that answers: the warm previous champion, or one started now. Returns its URL,
    its supervisor's pid, and whether it was warm. It is recorded as the stack's challenger until adopted."""
    previous = warm_previous(cfg)
    if previous and str(previous["version"]) == version and deep_probe(previous["vllm_url"], model,
                                                                       api_key=vllm_key(cfg)):
        forget_previous(cfg, stop=False)
        record_challenger(cfg, previous["pid"])
        return previous["vllm_url"], previous["pid"], True
    hf_dir = fetch_version(cfg, model, version)
    engine = start_challenger(cfg, hf_dir, model, challenger_port(cfg, champion_port(cfg)))
    record_challenger(cfg, engine.pid)
    try:
        engine.wait_ready()
    except BaseException:
        engine.stop()
        record_challenger(cfg, None)
        raise
    return engine.base_url, engine.pid or 0, False
