"""Model stores: where each region's model repositories live, and what a model directory
says about itself (``model.json``: backend, licence, hash of the weights).

A model version is accepted only from a store the operator declared for a region, so the
region its weights sit in is known, and the residency policy can be asked about it.
Stores are directories on the control plane's host (``file://``); object stores are a
later addition and are refused with a clear reason until then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from control_plane.errors import FieldError, InvalidInput
from control_plane.settings import Settings

__all__ = ["ModelChoice", "ModelSource", "available_models", "path_of", "resolve", "store_roots"]

MANIFEST = "model.json"
_FIELD = "body.model_uri"


@dataclass(frozen=True, slots=True)
class ModelSource:
    uri: str
    path: Path
    region: str
    backend: str
    license: str
    weights_sha256: str


def store_roots(settings: Settings, regions: list[str]) -> dict[str, Path]:
    """Each region's store directory: configured, else ``<model_store_root>/<region>``."""
    roots = {r: settings.model_store_root / r for r in regions}
    for region, uri in settings.model_stores.items():
        roots[region] = path_of(uri)
    return {r: p.resolve() for r, p in roots.items()}


def path_of(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
        raise InvalidInput(
            detail=f"Only file:// model stores are supported on this control plane: {uri!r}.",
            errors=[FieldError(_FIELD, "unsupported scheme")],
        )
    return Path(unquote(parsed.path))


def resolve(uri: str, settings: Settings, regions: list[str]) -> ModelSource:
    """The region and manifest of a model directory; a clear refusal when it is outside
    every store, missing, or not a Triton model directory."""
    path = path_of(uri).resolve()
    region = next(
        (r for r, root in store_roots(settings, regions).items() if path.is_relative_to(root)),
        None,
    )
    if region is None:
        raise InvalidInput(
            detail="The model must come from a region's model store; this path is in none.",
            errors=[FieldError(_FIELD, "outside every model store")],
        )
    if not (path / "config.pbtxt").is_file():
        raise InvalidInput(
            detail=f"No Triton model at {uri} (config.pbtxt is missing).",
            errors=[FieldError(_FIELD, "not a Triton model directory")],
        )
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            detail=f"The model's {MANIFEST} is missing or unreadable: {type(exc).__name__}.",
            errors=[FieldError(_FIELD, f"no readable {MANIFEST}")],
        ) from exc
    sha = str(manifest.get("weights_sha256", ""))
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise InvalidInput(
            detail=f"The model's {MANIFEST} needs weights_sha256 (64 hex digits).",
            errors=[FieldError(_FIELD, "manifest without a weights hash")],
        )
    return ModelSource(
        uri=path.as_uri(),
        path=path,
        region=region,
        backend=str(manifest.get("backend", "python")),
        license=str(manifest.get("license", "unknown"))[:100],
        weights_sha256=sha,
    )


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A model directory found in a region's store, as a create form offers it."""

    uri: str
    name: str
    region: str
    backend: str
    license: str
    weights_sha256: str


def available_models(settings: Settings, regions: list[str]) -> list[ModelChoice]:
    """The Triton model directories (with ``config.pbtxt`` and ``model.json``) in the stores
    of ``regions``, by region then name; directories that would be refused are left out."""
    choices: list[ModelChoice] = []
    for region, root in sorted(store_roots(settings, regions).items()):
        if region not in regions or not root.is_dir():
            continue
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            if not (path / "config.pbtxt").is_file() or not (path / MANIFEST).is_file():
                continue
            try:
                source = resolve(path.as_uri(), settings, regions)
            except InvalidInput:
                continue
            choices.append(
                ModelChoice(
                    uri=source.uri, name=path.name, region=source.region,
                    backend=source.backend, license=source.license,
                    weights_sha256=source.weights_sha256,
                )
            )  # fmt: skip
    return choices
