"""The pretrained base a profile adapts: ``lmforge base`` turns a GGUF file or an HF directory into ``models/base``."""
