"""Roll the challenger out beside the running champion in steps of traffic, then promote it or roll it back.

    report = run_rollout(cfg)      # what `lmforge rollout` and flows/rollout.py run
    report["rollout"]["decision"]  # "promote", "rollback" or "skipped" (no challenger, it is the champion ...)

1. Plan: the ``champion`` and ``challenger`` aliases of ``cfg.model_name(registry.serve_role)``. Nothing to roll
   out when there is no challenger, it is the champion, or its gates failed (it could never be promoted).
2. Launch the challenger's vLLM (fetched from the registry like the champion) on the other vLLM port; while it
   loads, make sure the champion is served (a running stack that already serves it is kept as it is).
3. Warm the challenger up (each prompt once, straight to its vLLM, unmeasured). For each step of
   ``rollout.steps``: route that share of traffic to the challenger through the gateway's admin API
   (``canary``), or mirror it (``shadow``); send ``requests_per_step`` requests; read back from the gateway what
   each arm did; judge the step (``lmforge.rollout.analysis``, pure).
4. Promote: move ``champion`` through ``promote_to_champion`` (gates checked again; the figures are the reason in
   the promotion log), switch the gateway to the challenger, keep the old champion's vLLM warm for
   ``serve.previous_champion_grace_s`` (``lmforge rollback`` then only switches back), then it stops. Roll back: all
   traffic to the champion, the challenger's vLLM stopped. Either way the verdict is tagged on the challenger's
   version (``lmforge.rollout``) and the whole report is written to ``<state>/serve/rollouts/``.

Anything that fails mid-way sends all traffic back to the champion and stops the challenger before re-raising.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient

from lmforge import envs
from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.registry.promote import PromotionRefused, gate_failures, promote_to_champion
from lmforge.registry.stage import served_role
from lmforge.rollout.analysis import Decision, StepResult, arm_figures, decide, judge_step
from lmforge.rollout.champion import (
    alias_version,
    champion_version,
    ensure_champion_served,
    fetch_version,
    record_serving_settings,
    serves,
)
from lmforge.rollout.quality import quality_failures
from lmforge.rollout.traffic import ClientTally, direct_answers, send_requests, warm_up
from lmforge.serve.admin import AdminClient
from lmforge.serve.engine import VLLMEngine
from lmforge.serve.handover import adopt_engine, start_challenger, warm_previous
from lmforge.serve.routing import Observation
from lmforge.serve.stack import admin_key, challenger_port, champion_port, record_challenger

log = logging.getLogger("lmforge.rollout")
ROLLOUT_TAG = "lmforge.rollout"
COLLECT_TIMEOUT_S = 120.0  # how long to wait for the gateway to account for a step (shadow copies included)


@dataclass(frozen=True)
class Plan:
    model: str
    champion: str
    challenger: str | None
    skip: str | None  # why nothing is rolled out; None: roll out


def run_rollout(cfg: LMForgeConfig) -> dict[str, Any]:
    """Serve the champion, roll the challenger out against it if there is one; return what is served now."""
    plan = plan_rollout(cfg)
    if plan.skip:
        log.info("no rollout: %s", plan.skip)
        return {**ensure_champion_served(cfg), "rollout": {"decision": "skipped", "reason": plan.skip}}
    assert plan.challenger is not None
    hf_dir = fetch_version(cfg, plan.model, plan.challenger)
    running = serves(cfg, plan.model, plan.champion)
    port = challenger_port(cfg, champion_port(cfg) if running else cfg.serve.vllm_port)
    engine = start_challenger(cfg, hf_dir, plan.model, port)  # loads while the champion is made sure of
    try:
        served = ensure_champion_served(cfg)
        record_challenger(cfg, engine.pid)
        engine.wait_ready()
        record_serving_settings(cfg, plan.model, plan.challenger, engine.settings())
    except BaseException:
        engine.stop()
        record_challenger(cfg, None)
        raise
    report = roll_out(cfg, plan, engine, served["gateway_url"])
    if report["decision"] == "promote":
        served = {**served, "version": plan.challenger, "vllm_url": engine.base_url}
    return {**served, "rollout": report}


def plan_rollout(cfg: LMForgeConfig) -> Plan:
    name = cfg.model_name(served_role(cfg))
    champion = champion_version(cfg, name)
    challenger = alias_version(cfg, name, "challenger")
    skip = None
    if challenger is None:
        skip = f"{name} has no challenger"
    elif challenger == champion:
        skip = f"the challenger v{challenger} is already the champion"
    elif failures := gate_failures(cfg, name, challenger):
        skip = f"challenger v{challenger} could never become champion: {'; '.join(failures)}"
    return Plan(name, champion, challenger, skip)


def roll_out(cfg: LMForgeConfig, plan: Plan, engine: VLLMEngine, gateway_url: str) -> dict[str, Any]:
    """Steps 3 and 4 with a ready challenger ``engine`` beside the champion behind ``gateway_url``."""
    rollout = cfg.rollout
    key = admin_key(cfg)
    admin = AdminClient(gateway_url, key)
    policy_path = cfg.resolve(rollout.challenger_policy or cfg.serve.policy)
    arm = {"upstream_url": engine.base_url, "model_version": plan.challenger,
           "policy": yaml.safe_load(policy_path.read_text()) if rollout.challenger_policy else None}
    rng = random.Random(rollout.seed)
    began = time.monotonic()
    report: dict[str, Any] = {"model": plan.model, "champion": plan.champion, "challenger": plan.challenger,
                              "mode": rollout.mode, "challenger_url": engine.base_url,
                              "started_at": _now(), "steps": []}
    results: list[StepResult] = []
    # The baseline: the champion's latest requests_per_step answers, this step's first. Latency drifts with the
    # machine's load over minutes; answers far apart in time compare the load, not the models.
    champion_seen: list[Observation] = []
    # Likewise the champion's latest answer to each prompt: at a 100 % canary step it answers nothing, and a
    # challenger is judged against how the champion answered, not against no answers at all.
    champion_answers: dict[str, list[str]] = {}
    try:
        warm_up(engine.base_url, plan.model, rollout, api_key=engine.api_key)
        decision = decide(results, rollout)
        while decision.action == "continue":
            share = decision.next_share or 0
            state = admin.set_route(share, rollout.mode, challenger=None if results else arm)
            tally = send_requests(gateway_url, key, plan.model, rollout, rollout.requests_per_step, rng)
            observed = _collect(admin, state["cursor"], tally.sent)
            champion_seen = [*champion_seen, *(o for o in observed if o.arm == "champion" and not o.mirrored)]
            champion_seen = champion_seen[-rollout.requests_per_step:]
            champion_answers.update(tally.answers_of("champion"))
            quality = _quality_failures(cfg, plan, engine, tally, champion_answers)
            step = judge_step(share, rollout.mode, arm_figures([o for o in observed if o.arm == "challenger"]),
                              arm_figures(champion_seen) if champion_seen else None, rollout, quality)
            results.append(step)
            report["steps"].append({**step.to_dict(), "client": tally.to_dict(), "quality_failures": quality})
            decision = decide(results, rollout)
            log.info("step %s%% %s: %s", share, "passed" if step.passed else "failed", decision.reason)
        report.update(_finish(cfg, plan, engine, admin, decision, policy_path))
    except BaseException as err:
        _abort(engine, admin, cfg)
        report.update(decision="aborted", reason=f"aborted: {type(err).__name__}: {err}")
        _record(cfg, plan, report, began)
        raise
    finally:
        admin.close()
    _record(cfg, plan, report, began)
    return report


def _quality_failures(cfg: LMForgeConfig, plan: Plan, engine: VLLMEngine, tally: ClientTally,
                      champion: dict[str, list[str]]) -> list[str]:
    """Is the challenger's answering worse than the champion's (its latest answer to each prompt)? Canary: the
    answers clients got from each arm; shadow: the champion's answers against the challenger's own to the same
    prompts (asked directly)."""
    if cfg.rollout.mode == "canary":
        challenger = tally.answers_of("challenger")
    else:
        challenger = direct_answers(engine.base_url, plan.model, list(champion), cfg.rollout.max_tokens)
    return quality_failures(challenger, champion, cfg.eval)


def _finish(
    cfg: LMForgeConfig, plan: Plan, engine: VLLMEngine, admin: AdminClient, decision: Decision, policy_path: Path
) -> dict[str, Any]:
    assert plan.challenger is not None
    move = None
    if decision.action == "promote":
        try:  # the registry first: it is what every later start serves
            move = promote_to_champion(cfg, plan.model, plan.challenger, by="lmforge rollout", reason=decision.reason)
        except PromotionRefused as refused:
            decision = Decision("rollback", None, f"rolled back: {refused}")
    if decision.action == "promote":
        admin.promote()
        old_stopped = adopt_engine(cfg, engine.base_url, engine.pid or 0, plan.challenger, policy_path)
        return {"decision": "promote", "reason": decision.reason, "promotion": asdict(move) if move else None,
                "old_champion_stopped": old_stopped, "previous_champion": warm_previous(cfg)}
    admin.clear_route()
    engine.stop()
    record_challenger(cfg, None)
    return {"decision": "rollback", "reason": decision.reason, "challenger_stopped": not engine.alive()}


def _collect(admin: AdminClient, cursor: int, sent: int) -> list[Observation]:
    """The step's observations, once the gateway has accounted for every request and shadow copy."""
    deadline = time.monotonic() + COLLECT_TIMEOUT_S
    while True:
        observed, _, pending = admin.observations(cursor)
        answered = sum(not o.mirrored for o in observed)
        if (pending == 0 and answered >= sent) or time.monotonic() > deadline:
            return observed
        time.sleep(0.1)


def _abort(engine: VLLMEngine, admin: AdminClient, cfg: LMForgeConfig) -> None:
    try:
        admin.clear_route()
    except Exception:  # the gateway may be what failed; the challenger still has to go
        log.exception("could not route traffic back to the champion")
    engine.stop()
    record_challenger(cfg, None)


def _record(cfg: LMForgeConfig, plan: Plan, report: dict[str, Any], began: float) -> None:
    """The verdict as a tag on the challenger's version; the whole report under <state>/serve/rollouts/."""
    report["seconds"] = round(time.monotonic() - began, 1)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = envs.state_dir() / "serve" / "rollouts" / f"{plan.model}-v{plan.challenger}-{stamp}.json"
    report["report_path"] = str(path)
    write_json_atomic(path, report)
    record_verdict(plan.model, str(plan.challenger), {
        "decision": report["decision"], "mode": report["mode"], "against_champion": plan.champion,
        "reason": report["reason"][:3000], "report": str(path)})


def record_verdict(model: str, version: str, verdict: dict[str, Any]) -> None:
    """Tag the challenger's version with what became of it (``lmforge.rollout``): promote, rollback, rejected."""
    try:
        MlflowClient().set_model_version_tag(model, version, ROLLOUT_TAG, json.dumps({**verdict, "at": _now()}))
    except Exception:  # the report file still holds it; a tag failure must not hide the verdict
        log.exception("could not tag %s v%s with the rollout verdict", model, version)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

