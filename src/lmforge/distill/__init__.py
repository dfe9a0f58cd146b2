"""Knowledge distillation: a smaller student trained on the teacher's top-k log-probs, and a no-KD baseline.

``run_distill`` is the stage entry point; ``kd_loss`` is the loss it optimises.
"""
