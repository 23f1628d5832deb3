"""Inference endpoints: Triton deployments, their model repositories and the gateway."""
