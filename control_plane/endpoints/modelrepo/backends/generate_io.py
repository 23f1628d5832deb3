"""The "generate" I/O of a decoupled Python-backend model (runs inside Triton's stub).

Copied beside each generate model's ``model.py``; imports nothing from the control plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _input(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(-1)[0]


class GenerateRequest:
    """One request: its prompt, ``max_tokens`` and ``stream``, and how to answer it.

    Streaming sends every delta as its own response and an empty final one; otherwise
    the deltas are joined into one response flagged final.
    """

    def __init__(self, request: Any, default_max_tokens: int) -> None:
        self.request = request
        self.sender = request.get_response_sender()
        prompt = _input(request, "text_input")
        self.prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
        max_tokens = _input(request, "max_tokens")
        self.max_tokens = default_max_tokens if max_tokens is None else max(0, int(max_tokens))
        stream = _input(request, "stream")
        self.stream = bool(stream) if stream is not None else False
        self._text: list[str] = []

    def cancelled(self) -> bool:
        """The client went away (stream cancelled or connection closed)."""
        return bool(self.request.is_cancelled())

    def send_delta(self, text: str) -> None:
        if self.stream:
            self.sender.send(_response(text))
        else:
            self._text.append(text)

    def finish(self) -> None:
        if self.stream:
            self.sender.send(flags=FINAL)
        else:
            self.sender.send(_response("".join(self._text)), flags=FINAL)

    def fail(self, message: str) -> None:
        error = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        self.sender.send(error, flags=FINAL)


def _response(text: str) -> Any:
    output = np.array([text.encode("utf-8")], dtype=np.object_)
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", output)])


def model_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` of ``config.pbtxt`` as plain strings."""
    parameters = model_config.get("parameters", {})
    return {key: str(value.get("string_value", "")) for key, value in parameters.items()}
