"""Point MLflow at the project's tracking store and make sure the experiment exists.

With a SQLite URI MLflow would put artifacts in ``./mlruns`` of whatever directory the process started in;
the experiment is created with an explicit artifact location under the state directory instead.
"""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from lmforge import envs
from lmforge.config import LMForgeConfig


class TrackingUnavailable(RuntimeError):
    """The tracking server did not answer."""


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
        raise TrackingUnavailable(f"MLflow tracking at {uri} failed: {err.message}") from err
    except Exception as err:  # connection refused, DNS, timeouts from the REST client
        raise TrackingUnavailable(
            f"MLflow tracking at {uri} is unreachable ({type(err).__name__}): start it with "
            "`lmforge mlflow-server` or unset LMFORGE_MLFLOW_URI for the embedded SQLite store"
        ) from err
    mlflow.set_experiment(name)
    return experiment_id
