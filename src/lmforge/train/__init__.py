"""Pretraining and supervised fine-tuning of a Llama decoder with Lightning.

``run_pretrain`` (shards → ``models/pretrain``) and ``run_finetune`` (``models/pretrain`` + SFT pairs →
``models/teacher``) are the stage entry points; the other modules are their building blocks.
"""
