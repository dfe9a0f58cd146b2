"""Answer quality, measured with lm-evaluation-harness on a held-out, decontaminated eval set.

    lmforge eval --model runs/tiny/models/teacher        # or models:/lmforge-tiny-student@champion
    build_eval_set(cfg)          # evalset: runs/<profile>/eval/{qa,ifeval,heldout}.jsonl + decontamination
    run_harness(target, cfg)     # harness: lm-eval tasks of configs/eval/ -> scores and every answer
    judge(scores, cfg.eval.gate) # gate: passed, or one reason per failed limit
"""
