"""Benchmark answer quality: every model of a profile on the same held-out eval set, and the known-bad models
the gate must refuse. Prints one table.

    python benchmarks/bench_quality.py                         # the tiny profile's run (runs/tiny), after `make run`
    python benchmarks/bench_quality.py --profile base --models base=runs/base/models/base
    python benchmarks/bench_quality.py --no-bad                # only the profile's models

Reads the profile's work dir (``shards/``, ``clean/``, ``models/*``) and builds its eval set if missing; the
known-bad models are made in a temporary directory from the student's config and tokenizer: randomly
initialised weights, one token repeated forever, EOS first. Nothing is logged to MLflow.
Targets (issue 19): the served champion's score >= the base's on the same set, non-degenerate; student >= 90 %
of the teacher's score at <= 0.5x parameters; each known-bad model refused with its own reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from lmforge import envs
from lmforge.config import load_config
from lmforge.quiet import quiet_third_party

ROLES = ("base", "pretrain", "teacher", "student", "quantised")
COLUMNS = ("score", "lmforge_qa/token_f1", "lmforge_ifeval/prompt_level_strict_acc", "degeneracy/distinct_2",
           "degeneracy/repeated_4gram_share", "degeneracy/eos_share", "degeneracy/empty_share",
           "lmforge_heldout_ppl/word_perplexity")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. eval.qa_items=16")
    parser.add_argument("--models", action="append", default=[], help="extra NAME=DIR to score beside the roles")
    parser.add_argument("--no-bad", action="store_true", help="skip the known-bad models")
    args = parser.parse_args()
    envs.apply_offline_defaults()
    quiet_third_party()
    from lmforge.eval.known_bad import known_bad_models
    from lmforge.eval.stage import ensure_eval_set, run_eval

    cfg = load_config(args.profile, args.set)
    eval_set = ensure_eval_set(cfg)
    models = {role: cfg.paths.models / role for role in ROLES if (cfg.paths.models / role / "config.json").is_file()}
    models.update(dict(item.split("=", 1) for item in args.models))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        if not args.no_bad and models:
            like = Path(models.get("student") or next(iter(models.values())))
            models.update({f"bad:{k}": v for k, v in known_bad_models(like, Path(tmp)).items()})
        for name, model_dir in models.items():
            began = time.perf_counter()
            report = run_eval(cfg, str(model_dir), log=False)
            rows.append((name, parameters(Path(model_dir)), report, time.perf_counter() - began))
    print(f"eval set: {eval_set['qa_items']} QA, {eval_set['ifeval_items']} instruction items, "
          f"{eval_set['heldout_docs']} held-out docs; dropped for {eval_set['ngram']}-gram overlap: "
          f"{eval_set['contaminated']}; max_new_tokens {cfg.eval.max_new_tokens}")
    print("| model | params (M) | " + " | ".join(COLUMNS) + " | s | verdict |")
    print("|---|---:|" + "---:|" * len(COLUMNS) + "---:|---|")
    for name, params, report, seconds in rows:
        figures = " | ".join(f"{report.scores[c]:.3f}" if c in report.scores else "-" for c in COLUMNS)
        print(f"| {name} | {params / 1e6:.1f} | {figures} | {seconds:.0f} | {report.verdict} |")
    scores = {name: report.scores.get("score", 0.0) for name, _, report, _ in rows}
    if "teacher" in scores and "student" in scores and scores["teacher"] > 0:
        share = scores["student"] / scores["teacher"]
        params = {n: p for n, p, _, _ in rows}
        ratio = params["student"] / params["teacher"]
        print(f"student keeps {share:.0%} of the teacher's score (target >= 90 %) at {ratio:.2f}x its parameters")
    bad = [(name, report) for name, _, report, _ in rows if name.startswith("bad:")]
    refused = all(not report.passed for _, report in bad)
    print(f"known-bad models refused: {refused} " + json.dumps({n: list(r.reasons) for n, r in bad}))
    return 0 if refused else 1


def parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(path, "pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118
    return total


if __name__ == "__main__":
    sys.exit(main())
