"""Point MLflow at the project's tracking store and make sure the experiment exists.

With a SQLite URI MLflow would put artifacts in ``./mlruns`` of whatever directory the process started in;
the experiment is created with an explicit artifact location under the state directory instead.

Against a server with MLflow's basic-auth app, the client sends ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``; a 401 or 403 becomes ``RegistryAccessDenied``, which names the user and the action.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.exceptions import MlflowException

from lmforge import envs
from lmforge.config import LMForgeConfig

ACCESS_ERRORS = ("UNAUTHENTICATED", "PERMISSION_DENIED")  # MLflow's error codes for HTTP 401 and 403


class TrackingUnavailable(RuntimeError):
    """The tracking server did not answer."""


class RegistryAccessDenied(PermissionError):
    """The tracking server refused this user (HTTP 401: who are you; 403: not allowed)."""


def setup_tracking(cfg: LMForgeConfig) -> str:
    """Set the tracking URI, create the experiment if needed, return its id."""
    uri = cfg.tracking_uri()
    mlflow.set_tracking_uri(uri)
    name = cfg.registry.experiment
    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            mlflow.set_experiment(name)
            return experiment.experiment_id
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
            location = (envs.state_dir() / "mlartifacts").as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    except MlflowException as err:
        if err.error_code in ACCESS_ERRORS:
            raise RegistryAccessDenied(access_message(f"use experiment {name!r}", err)) from err
        raise TrackingUnavailable(f"MLflow tracking at {uri} failed: {err.message}") from err
    except Exception as err:  # connection refused, DNS, timeouts from the REST client
        raise TrackingUnavailable(
            f"MLflow tracking at {uri} is unreachable ({type(err).__name__}): start it with "
            "`lmforge mlflow-server` or unset LMFORGE_MLFLOW_URI for the embedded SQLite store"
        ) from err
    mlflow.set_experiment(name)
    return experiment_id


@contextmanager
def access_checked(action: str) -> Iterator[None]:
    """Raise ``RegistryAccessDenied`` (a one-line reason) where the server answers 401 or 403 to ``action``."""
    try:
        yield
    except MlflowException as err:
        if err.error_code not in ACCESS_ERRORS:
            raise
        raise RegistryAccessDenied(access_message(action, err)) from err


def access_message(action: str, err: MlflowException) -> str:
    uri = mlflow.get_tracking_uri()
    user = envs.MLFLOW_TRACKING_USERNAME.get()
    if err.error_code == "UNAUTHENTICATED":
        return (f"{uri} did not accept the credentials of {user or 'an anonymous client'} (HTTP 401) to {action}: "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    return (f"user {user!r} may not {action} on {uri} (HTTP 403): an admin can grant EDIT or MANAGE "
            "(docs/registry.md)")
