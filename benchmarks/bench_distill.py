"""Benchmark distillation on a finished run: size, perplexity and decode speed of teacher, KD student and no-KD
student, plus the seed-to-seed spread that the KD margin must beat. Prints one table.

    python benchmarks/bench_distill.py                     # the tiny profile's run (runs/tiny), after `make run`
    python benchmarks/bench_distill.py --profile small --seeds 3 --no-vllm

Reads ``models/{teacher,student,baseline}`` and ``shards/`` of the profile's work dir and changes nothing there:
the extra seeds train in a temporary copy of the work dir (student and baseline only, same steps and data).
Perplexity: the distill stage's protocol (pretraining val split, non-overlapping seq_len windows), and the
response perplexity on the instruction val split (reported, not a target: the fine-tuned teacher's own domain). Decode:
greedy, batch 1, the same prompts and new tokens for every model, with HF ``generate`` as the gate measures it
(one thread, teacher and student taking turns, fastest of 5 per prompt, the ratio the median of per-prompt
ratios) and with the real vLLM OpenAI server on 127.0.0.1 (one server per model, sequential requests, fastest
of 3).
Targets (DistilGPT2's anchors): student <= 0.5x teacher parameters, perplexity ratio <= 1.3, decode >= 1.8x,
KD margin over the no-KD student larger than the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lmforge import envs
from lmforge.config import LMForgeConfig, load_config
from lmforge.distill.stage import _decode_prompts, train_student
from lmforge.quiet import quiet_third_party
from lmforge.train.evaluate import evaluate_perplexity, paired_decode_speed, response_perplexity
from lmforge.train.model import count_parameters

ROLES = ("teacher", "student", "baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--seeds", type=int, default=2, help="extra seeds per student for the spread (0: skip)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM decode figures")
    args = parser.parse_args()
    envs.apply_offline_defaults()
    quiet_third_party()
    cfg = load_config(args.profile)
    models = {role: cfg.paths.models / role for role in ROLES}
    missing = [str(p) for p in models.values() if not (p / "_COMPLETE").is_file()]
    if missing:
        sys.exit(f"no finished models at {missing}: run `make run` (or `lmforge pipeline --profile "
                 f"{args.profile}`) first")

    from transformers import AutoModelForCausalLM

    params = {r: count_parameters(AutoModelForCausalLM.from_pretrained(p)) for r, p in models.items()}
    disk = {r: sum(f.stat().st_size for f in p.glob("*.safetensors")) for r, p in models.items()}
    seq_len = cfg.distill.train.seq_len
    ppl = {r: evaluate_perplexity(p, cfg.paths.shards, "val", seq_len=seq_len)["ppl"] for r, p in models.items()}
    sft = {r: response_perplexity(p, cfg.paths.shards, seq_len)["ppl"] for r, p in models.items()}
    prompts = _decode_prompts(cfg.paths.shards)
    hf = paired_decode_speed({r: models[r] for r in ("teacher", "student")}, prompts, args.new_tokens, 5,
                             reference="teacher")  # the gate's measurement: turns, median per-prompt ratio
    vllm = {} if args.no_vllm else {r: vllm_decode_speed(cfg, models[r], prompts, args.new_tokens)
                                    for r in ("teacher", "student")}
    spread = seed_spread(cfg, args.seeds, ppl, sft) if args.seeds else {}

    rows = [
        ("parameters", f"teacher {params['teacher']:,}  student {params['student']:,}",
         f"{params['student'] / params['teacher']:.3f}x", "<= 0.5x", params["student"] <= 0.5 * params["teacher"]),
        ("safetensors bytes", f"teacher {disk['teacher']:,}  student {disk['student']:,}",
         f"{disk['student'] / disk['teacher']:.3f}x", "", None),
        ("val perplexity", f"teacher {ppl['teacher']:.1f}  KD {ppl['student']:.1f}  no-KD {ppl['baseline']:.1f}",
         f"KD/teacher {ppl['student'] / ppl['teacher']:.3f}", "<= 1.3", ppl["student"] / ppl["teacher"] <= 1.3),
        ("response perplexity", f"teacher {sft['teacher']:.1f}  KD {sft['student']:.1f}  no-KD {sft['baseline']:.1f}",
         f"KD/teacher {sft['student'] / sft['teacher']:.3f}", "(reported)", None),
        ("decode, HF generate", f"teacher {hf['teacher']:.0f}  student {hf['student']:.0f} tok/s",
         f"{hf['speedup']['student']:.2f}x", ">= 1.8x", hf["speedup"]["student"] >= 1.8),
    ]
    if vllm:
        rows.append(("decode, vLLM server", f"teacher {vllm['teacher']:.0f}  student {vllm['student']:.0f} tok/s",
                     f"{vllm['student'] / vllm['teacher']:.2f}x", ">= 1.8x",
                     vllm["student"] / vllm["teacher"] >= 1.8))
    if spread:
        margin = ppl["baseline"] - ppl["student"]
        worst = max(spread["student_range"], spread["baseline_range"])
        rows.append(("KD margin vs seed spread",
                     f"KD ppl over {spread['n']} seeds {spread['student']}; no-KD {spread['baseline']}",
                     f"margin {margin:.1f}, spread {worst:.1f}", "margin > spread", margin > worst))
        # Seed i trains both students from the same initial weights and data order, so the per-seed difference
        # is the teacher's effect with the seed's luck taken out: the spread above is mostly shared by both.
        paired = [b - s for s, b in zip(spread["student"], spread["baseline"], strict=True)]
        rows.append(("KD margin, same seed", f"no-KD - KD ppl per seed {[round(d, 1) for d in paired]}",
                     f"min {min(paired):.1f}, mean {statistics.mean(paired):.1f}", "> 0 every seed",
                     min(paired) > 0))
        on_sft = [b - s for s, b in zip(spread["student_sft"], spread["baseline_sft"], strict=True)]
        rows.append(("same, response ppl", f"KD {spread['student_sft']}; no-KD {spread['baseline_sft']}",
                     f"no-KD - KD per seed {[round(d, 1) for d in on_sft]}", "(reported)", None))
    print(f"lmforge distillation benchmark ({args.profile}; {len(prompts)} prompts x {args.new_tokens} new tokens; "
          f"ppl on val, seq_len {seq_len})")
    print(f"{'metric':26} {'measured':66} {'ratio':28} {'target':16} verdict")
    for metric, measured, ratio, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"{metric:26} {measured:66} {ratio:28} {target:16} {verdict}")


def seed_spread(cfg: LMForgeConfig, extra: int, ppl: dict[str, float], sft: dict[str, float]) -> dict:
    """Retrain student and baseline with ``extra`` more seeds in a scratch copy; their perplexity range (and
    their response perplexities, reported beside it)."""
    from transformers import LlamaForCausalLM

    teacher_meta = json.loads((cfg.paths.models / "teacher" / "lmforge.json").read_text())
    found = {"student": [ppl["student"]], "baseline": [ppl["baseline"]]}
    found_sft = {"student": [sft["student"]], "baseline": [sft["baseline"]]}
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-distill-") as tmp:
        work = Path(tmp) / "work"
        os.environ["LMFORGE_MLFLOW_URI"] = f"sqlite:///{tmp}/mlflow.db"  # keep benchmark runs out of the registry
        for name in ("shards", "tokenizer"):
            shutil.copytree(cfg.paths.work_dir / name, work / name)
        shutil.copytree(cfg.paths.models / "teacher", work / "models" / "teacher")
        teacher = LlamaForCausalLM.from_pretrained(work / "models" / "teacher").eval()
        for seed in range(1, extra + 1):
            train = cfg.distill.train.model_copy(update={"seed": cfg.distill.train.seed + seed})
            run_cfg = cfg.model_copy(update={"work_dir": work,
                                             "distill": cfg.distill.model_copy(update={"train": train})})
            for role in ("student", "baseline"):
                result = train_student(run_cfg, role, teacher if role == "student" else None, teacher_meta,
                                       {"lmforge.benchmark": "bench_distill"})
                found[role].append(result.metrics["val_ppl"])
                found_sft[role].append(response_perplexity(result.model_dir, work / "shards", train.seq_len)["ppl"])
    return {"n": extra + 1, "student": [round(x, 1) for x in found["student"]],
            "baseline": [round(x, 1) for x in found["baseline"]],
            "student_range": max(found["student"]) - min(found["student"]),
            "baseline_range": max(found["baseline"]) - min(found["baseline"]),
            "student_sd": statistics.pstdev(found["student"]),
            "student_sft": [round(x, 1) for x in found_sft["student"]],
            "baseline_sft": [round(x, 1) for x in found_sft["baseline"]]}


def vllm_decode_speed(cfg: LMForgeConfig, model_dir: Path, prompts: list[str], new_tokens: int) -> float:
    """Sequential greedy completions through vLLM's OpenAI server: new tokens per second, after a warm-up."""
    from openai import OpenAI

    from lmforge.serve.engine import VLLMEngine

    port = _free_port()
    log = envs.state_dir() / "bench" / f"vllm-{model_dir.name}.log"
    with VLLMEngine(model_dir, [model_dir.name], cfg.serve, port, log) as engine:
        engine.wait_ready()
        client = OpenAI(base_url=f"{engine.base_url}/v1", api_key="unused")
        ask = {"model": model_dir.name, "max_tokens": new_tokens, "temperature": 0.0,
               "extra_body": {"min_tokens": new_tokens, "ignore_eos": True}}
        client.completions.create(prompt=prompts[0], **ask)  # warm-up
        tokens, seconds = 0, 0.0
        for prompt in prompts:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                out = client.completions.create(prompt=prompt, **ask)
                best = min(best, time.perf_counter() - start)
            tokens += out.usage.completion_tokens
            seconds += best
    return tokens / seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
