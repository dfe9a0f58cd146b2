"""Post-training quantisation into formats vLLM's CPU backend runs (compressed-tensors W8A8 and W4A16)."""
