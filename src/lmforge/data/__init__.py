"""The data stage: ingest -> clean -> validate -> tokenize -> pack (see ``lmforge.data.stage``).

    from lmforge.config import load_config
    from lmforge.data.stage import run_data_stage
    run_data_stage(load_config("tiny"))   # runs/tiny/{raw,clean,validation,tokenizer,shards}
"""
