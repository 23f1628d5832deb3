"""KServe V2 (Open Inference Protocol) bodies for text models: read a request's
``text_input`` (JSON data, or Triton's binary tensor extension as ``tritonclient.http``
sends it by default) and ``max_tokens``, and write the answer as JSON tensors, which
every V2 client reads."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgspec

from control_plane.errors import FieldError, InvalidInput

__all__ = ["V2Request", "parse_request", "response_body"]

HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True, slots=True)
class V2Request:
    text: str
    max_tokens: int | None
    request_id: str | None


def _bad(reason: str, field: str = "body") -> InvalidInput:
    return InvalidInput(
        detail=f"Not a V2 text request: {reason}.", errors=[FieldError(field, reason)]
    )


def _bytes_elements(raw: bytes) -> list[bytes]:
    """Triton's binary BYTES tensor: each element a 4-byte little-endian length, then it."""
    out, at = [], 0
    while at + 4 <= len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return out


def _values(item: dict[str, Any], binary: bytes, offset: int) -> tuple[list[Any], int]:
    size = (item.get("parameters") or {}).get("binary_data_size")
    if size is None:
        data = item.get("data")
        return (data if isinstance(data, list) else [data]), offset
    raw = binary[offset : offset + int(size)]
    if item.get("datatype") == "BYTES":
        return [e.decode("utf-8", "replace") for e in _bytes_elements(raw)], offset + int(size)
    if item.get("datatype") == "INT32":
        return list(struct.unpack(f"<{len(raw) // 4}i", raw)), offset + int(size)
    return [], offset + int(size)


def parse_request(body: bytes, header_length: str | None) -> V2Request:
    split = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise _bad(
                "bad Inference-Header-Content-Length", "header.inference-header-content-length"
            )
        split = int(header_length)
    try:
        document = msgspec.json.decode(body[:split])
    except msgspec.DecodeError as exc:
        raise _bad("the header is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise _bad("no inputs", "body.inputs")
    binary, offset = body[split:], 0
    found: dict[str, list[Any]] = {}
    for item in document["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad("an input without a name", "body.inputs")
        found[item["name"]], offset = _values(item, binary, offset)
    text = found.get("text_input")
    if not text:
        raise _bad("no text_input tensor", "body.inputs")
    limit = found.get("max_tokens")
    max_tokens = int(limit[0]) if limit else None
    if max_tokens is not None and not 1 <= max_tokens <= 32_768:
        raise _bad("max_tokens out of range", "body.inputs.max_tokens")
    request_id = document.get("id")
    return V2Request(
        text="".join(str(t) for t in text),
        max_tokens=max_tokens,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def response_body(model: str, version: str, text: str, request_id: str | None) -> bytes:
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [1], "data": [text]}],
    }
    if request_id:
        body["id"] = request_id
    return msgspec.json.encode(body)
