"""The gateway's admin API (traffic routing for rollouts) and the client the rollout drives it with.

Endpoints (``Authorization: Bearer <admin key>``; 404 when the gateway has no admin key):

    GET    /admin/route                  champion, challenger, mode, share, ledger cursor, shadow copies pending
    PUT    /admin/route                  {"challenger": {"upstream_url", "model_version", "policy"?},
                                          "mode": "canary" | "shadow", "share": 0..100}
    DELETE /admin/route                  all traffic back to the champion; the challenger is dropped
    POST   /admin/promote                the challenger becomes the champion
    GET    /admin/observations?since=N   what each routed request did since ledger number N

``policy`` is a policy document (the YAML's content as JSON) the challenger's answers are filtered with;
without it the champion's policy applies. The stack writes the admin key to ``<state>/serve/<profile>-admin.key``
(mode 0600) and gives the gateway only its hash.

    admin = AdminClient("http://127.0.0.1:8000", key)
    admin.set_route(10, "canary", challenger={"upstream_url": "http://127.0.0.1:8101", "model_version": "4"})
    observations, cursor, pending = admin.observations(since=0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmforge.compliance import Policy, PolicyError, parse_policy
from lmforge.serve.auth import ApiKeys
from lmforge.serve.routing import Arm, Observation, Router


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upstream_url: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    policy: dict[str, Any] | None = None


class RouteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenger: ArmSpec | None = None
    mode: Literal["canary", "shadow"] = "canary"
    share: int = Field(ge=0, le=100)


def admin_routes(
    router: Router,
    admin_keys: ApiKeys,
    default_policy: Callable[[], Policy],
    make_client: Callable[[str], httpx.AsyncClient],
    retire: Callable[[Arm], None],
    reject: Callable[..., JSONResponse],
) -> APIRouter:
    """The ``/admin`` endpoints over ``router``; ``retire`` takes arms whose HTTP clients are no longer used."""
    api = APIRouter(prefix="/admin")

    def drop(arm: Arm | None) -> None:
        if arm is not None:
            retire(arm)

    def denied(request: Request) -> JSONResponse | None:
        if not admin_keys.enabled:
            return reject(404, "admin", "The admin API is not enabled on this gateway.", "invalid_request_error",
                          "not_found")
        if admin_keys.identify(request.headers.get("authorization")) is None:
            return reject(401, "admin_auth", "Invalid or missing admin key.", "invalid_request_error",
                          "invalid_api_key")
        return None

    def state() -> dict[str, Any]:
        return {**router.describe(), "pending": len(router.shadows)}

    @api.get("/route")
    async def get_route(request: Request) -> Response:
        return denied(request) or JSONResponse(state())

    @api.put("/route")
    async def put_route(request: Request) -> Response:
        if refused := denied(request):
            return refused
        try:
            update = RouteUpdate.model_validate_json(await request.body())
            challenger = None
            if update.challenger is not None:
                spec = update.challenger
                policy = parse_policy(spec.policy, "challenger policy") if spec.policy else default_policy()
                challenger = Arm("challenger", spec.upstream_url, spec.model_version, policy,
                                 make_client(spec.upstream_url))
            drop(router.set_route(challenger, update.mode, update.share))
        except ValidationError as err:
            first = err.errors()[0]
            message = f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
            return reject(400, "admin_bad_request", message, "invalid_request_error", "invalid_route")
        except (PolicyError, ValueError) as err:
            return reject(400, "admin_bad_request", str(err), "invalid_request_error", "invalid_route")
        return JSONResponse(state())

    @api.delete("/route")
    async def delete_route(request: Request) -> Response:
        if refused := denied(request):
            return refused
        drop(router.clear())
        return JSONResponse(state())

    @api.post("/promote")
    async def promote(request: Request) -> Response:
        if refused := denied(request):
            return refused
        try:
            drop(router.promote())
        except ValueError as err:
            return reject(409, "admin_conflict", str(err), "invalid_request_error", "no_challenger")
        return JSONResponse(state())

    @api.get("/observations")
    async def observations(request: Request, since: int = 0) -> Response:
        if refused := denied(request):
            return refused
        found = [o.to_dict() for o in router.ledger.since(since)]
        return JSONResponse({"observations": found, "cursor": router.ledger.cursor, "pending": len(router.shadows)})

    return api


class AdminError(RuntimeError):
    """The gateway refused an admin call or could not be reached."""


class AdminClient:
    """Blocking client of the admin API (the rollout runs outside the gateway's process)."""

    def __init__(self, gateway_url: str, admin_key: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=gateway_url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {admin_key}"})

    def route(self) -> dict[str, Any]:
        return self._call("GET", "/admin/route")

    def set_route(self, share: int, mode: str = "canary", challenger: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": mode, "share": share}
        if challenger is not None:
            body["challenger"] = challenger
        return self._call("PUT", "/admin/route", json=body)

    def clear_route(self) -> dict[str, Any]:
        return self._call("DELETE", "/admin/route")

    def promote(self) -> dict[str, Any]:
        return self._call("POST", "/admin/promote")

    def observations(self, since: int) -> tuple[list[Observation], int, int]:
        """Observations after ledger number ``since``, the newest number, and shadow copies still running."""
        body = self._call("GET", "/admin/observations", params={"since": since})
        return [Observation(**o) for o in body["observations"]], body["cursor"], body["pending"]

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise AdminError(f"gateway admin API unreachable at {self._http.base_url} ({type(err).__name__})") from err
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            raise AdminError(f"gateway admin {method} {path}: HTTP {r.status_code}: {message}")
        return r.json()
