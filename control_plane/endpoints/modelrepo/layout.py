"""The layout every text-generation model directory shares, whatever runs it.

    <repo>/<name>/config.pbtxt          Python backend, decoupled, the "generate" I/O below
    <repo>/<name>/1/model.py            the TritonPythonModel (+ generate_io.py, its I/O)
    <repo>/<name>/tokenizer.json        the model's own tokenizer (HF tokenizers format)
    <repo>/<name>/chat_template.jinja   renders [{role, content}, ...] to the prompt string
    <repo>/<name>/model.json            manifest: name, backend, license, weights + sha256

I/O follows Triton's vLLM / TensorRT-LLM "generate" models: ``text_input`` (string),
optional ``max_tokens`` (int32) and ``stream`` (bool) in, ``text_output`` (string) out,
each of dims [1]. With ``stream`` true a request gets one response per generated chunk,
each carrying only the new text, then an empty response flagged final; otherwise one
response with the whole text, flagged final.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

CONFIG_FILE = "config.pbtxt"
TOKENIZER_FILE = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
MANIFEST_FILE = "model.json"
VERSION = "1"
BACKENDS_DIR = Path(__file__).resolve().parent / "backends"

INPUT_TEXT = "text_input"
INPUT_MAX_TOKENS = "max_tokens"
INPUT_STREAM = "stream"
OUTPUT_TEXT = "text_output"

_IO = f"""input [
  {{ name: "{INPUT_TEXT}" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "{INPUT_MAX_TOKENS}" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "{INPUT_STREAM}" data_type: TYPE_BOOL dims: [ 1 ] optional: true }}
]
output [
  {{ name: "{OUTPUT_TEXT}" data_type: TYPE_STRING dims: [ 1 ] }}
]
"""


@dataclass(frozen=True)
class ModelManifest:
    """What governance shows before a model version serves traffic (``model.json``)."""

    name: str
    backend: str  # as Triton knows it
    runtime: str  # what runs inside the backend
    license: str
    weights_uri: str  # where the weights live
    weights_sha256: str
    tokenizer: str = TOKENIZER_FILE
    chat_template: str = CHAT_TEMPLATE_FILE
    description: str = ""


def generate_config(name: str, parameters: dict[str, str], *, instances: int = 1) -> str:
    """``config.pbtxt`` of a decoupled Python-backend model with the generate I/O."""
    params = "".join(
        f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
        for key, value in sorted(parameters.items())
    )
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        "model_transaction_policy { decoupled: true }\n"
        f"{_IO}"
        f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
        f"{params}"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_model_dir(repo: Path, name: str, backend_source: str) -> Path:
    """A fresh ``repo/name`` holding ``1/model.py`` copied from ``backends/<source>``.

    ``generate_io.py`` goes beside it (Triton puts the version directory on ``sys.path``).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")
    model_dir = Path(repo) / name
    shutil.rmtree(model_dir, ignore_errors=True)
    (model_dir / VERSION).mkdir(parents=True)
    shutil.copyfile(BACKENDS_DIR / backend_source, model_dir / VERSION / "model.py")
    shutil.copyfile(BACKENDS_DIR / "generate_io.py", model_dir / VERSION / "generate_io.py")
    return model_dir


def write_common(
    model_dir: Path, *, config: str, chat_template: str, manifest: ModelManifest
) -> None:
    """The files besides ``model.py`` and ``tokenizer.json``."""
    (model_dir / CONFIG_FILE).write_text(config)
    (model_dir / CHAT_TEMPLATE_FILE).write_text(chat_template)
    (model_dir / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


def read_manifest(model_dir: Path) -> ModelManifest:
    data = json.loads((Path(model_dir) / MANIFEST_FILE).read_text())
    return ModelManifest(**data)
