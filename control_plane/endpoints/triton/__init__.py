"""The inference runtime: a real Triton Inference Server process (see ``server``)."""
