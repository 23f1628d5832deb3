"""``model.py`` of the built-in tiny model (see control_plane/endpoints/modelrepo/tiny.py)."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

from generate_io import GenerateRequest, model_parameters
from tokenizers import Tokenizer


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = model_parameters(json.loads(args["model_config"]))
        self.delay = int(parameters.get("token_delay_ms", "0")) / 1000
        self.default_max_tokens = int(parameters.get("default_max_tokens", "16"))
        model_dir = Path(args["model_repository"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        weights = model_dir / args["model_version"] / "weights.json"
        self.token_ids: list[int] = json.loads(weights.read_text())["token_ids"]

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            generate = GenerateRequest(request, self.default_max_tokens)
            try:
                self._generate(generate)
            except Exception as exc:  # the request fails, the model stays up
                generate.fail(f"tiny model failed: {exc}")

    def _generate(self, generate: GenerateRequest) -> None:
        digest = hashlib.sha256(generate.prompt.encode("utf-8")).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - not crypto
        for _ in range(generate.max_tokens):
            if generate.cancelled():
                break
            if self.delay:
                time.sleep(self.delay)
            generate.send_delta(self.tokenizer.decode([rng.choice(self.token_ids)]))
        generate.finish()
