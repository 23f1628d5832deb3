"""Writers of Triton model directories for text-generation models (see ``layout``)."""

from control_plane.endpoints.modelrepo.layout import ModelManifest, read_manifest
from control_plane.endpoints.modelrepo.smollm2 import (
    llama_cpp_available,
    smollm2_gguf,
    write_smollm2_model,
)
from control_plane.endpoints.modelrepo.tiny import write_tiny_model

__all__ = [
    "ModelManifest",
    "llama_cpp_available",
    "read_manifest",
    "smollm2_gguf",
    "write_smollm2_model",
    "write_tiny_model",
]
