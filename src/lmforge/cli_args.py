"""The arguments of each ``lmforge`` subcommand beyond ``--profile`` and ``--set`` (``cli.COMMANDS`` names them)."""

from __future__ import annotations

import argparse


def args_distill(p: argparse.ArgumentParser) -> None:
    p.add_argument("--step", choices=["cache", "all"], default="all",
                   help="cache: only build the teacher's top-k cache (DVC stage teacher_cache); all: train both "
                        "students (building the cache first when distill.teacher is cache) and apply the gate")


def args_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a model directory or models:/NAME@ALIAS (or /VERSION); default: every trained "
                                   "role of the profile (teacher, student), written to reports/eval_<role>.json")
    p.add_argument("--gateway", help="score the model as served here (e.g. http://127.0.0.1:8000), through the "
                                     "compliance filter; --model then names the served model")
    p.add_argument("--api-key", help="the gateway's API key (default: the first of LMFORGE_API_KEYS)")


def args_ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", help="a user's JSONL ({id, text | prompt+response, source, license})")
    p.add_argument("--build-sample", action="store_true", help="rebuild data/sample from installed sources")
    p.add_argument("--out", help="with --build-sample: where to write the sample")


def args_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", help="a user's JSONL instead of the shipped sample")
    p.add_argument("--out", help="work directory for all outputs (overrides work_dir)")
    p.add_argument("--step", default="all", choices=["all", "ingest", "clean", "validate", "tokenize", "pack"])


def args_version(p: argparse.ArgumentParser, needs_reason: bool = True) -> None:
    p.add_argument("model", help="registered model name, e.g. lmforge-tiny-student")
    p.add_argument("version", help="model version number")
    p.add_argument("--by", required=True, help="who decides")
    p.add_argument("--reason", required=True, help="why")


def args_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name")


def args_register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-promote", action="store_true", help="only add challengers; never move champion")


def args_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="start", choices=["start", "stop", "status"])


def args_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?", help="the key's name (create, revoke): in metrics and logs, never the key")
    p.add_argument("--rpm", type=int, default=None, help="create: this key's requests per minute "
                   "(default: serve.rate_limit_rpm)")


def args_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name, e.g. lmforge-tiny-student")
    p.add_argument("--by", help="who decides (default: this user's login name)")
    p.add_argument("--reason", default="rollback on demand", help="why (goes to the promotion log)")


def args_filter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", help="policy YAML (default: serve.policy of the profile)")
    p.add_argument("--stream-chunks", type=int, default=None, help="feed each text in N-character chunks")


def args_mlflow_server(p: argparse.ArgumentParser) -> None:
    from lmforge.registry.server import DEFAULT_PORT

    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    p.add_argument("--backend", help="store URI (default: the profile's, else sqlite:///<state>/mlflow.db); e.g. "
                   "postgresql://USER:PASSWORD@127.0.0.1:5432/mlflow")
    p.add_argument("--artifacts", help="artifact directory or URI (default: <state>/mlartifacts)")
    p.add_argument("--auth", action="store_true", help="MLflow's basic-auth app (users, permissions)")
    p.add_argument("--auth-config", help="basic-auth ini, implies --auth (default: MLFLOW_AUTH_CONFIG_PATH, else "
                   "<state>/mlflow-auth/basic_auth.ini, written once with a random admin password)")


def no_args(p: argparse.ArgumentParser) -> None:
    return None
