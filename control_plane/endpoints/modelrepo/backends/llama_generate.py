"""``model.py`` of a GGUF model served by llama-cpp-python (see modelrepo/smollm2.py)."""

from __future__ import annotations

import json
from typing import Any

from generate_io import GenerateRequest, model_parameters
from llama_cpp import Llama


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = model_parameters(json.loads(args["model_config"]))
        self.default_max_tokens = int(parameters.get("default_max_tokens", "256"))
        self.temperature = float(parameters.get("temperature", "0"))  # 0: greedy
        self.llm = Llama(
            model_path=parameters["gguf_path"],
            n_ctx=int(parameters.get("n_ctx", "2048")),
            n_threads=int(parameters.get("n_threads", "2")),
            seed=int(parameters.get("seed", "0")),
            verbose=False,
        )

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            generate = GenerateRequest(request, self.default_max_tokens)
            try:
                self._generate(generate)
            except Exception as exc:  # the request fails, the model stays up
                generate.fail(f"llama.cpp failed: {exc}")

    def _generate(self, generate: GenerateRequest) -> None:
        if generate.max_tokens == 0:  # llama.cpp reads 0 as "until the context is full"
            generate.finish()
            return
        chunks = self.llm.create_completion(
            generate.prompt,
            max_tokens=generate.max_tokens,
            temperature=self.temperature,
            stream=True,
        )
        if isinstance(chunks, dict):
            raise TypeError("llama.cpp answered a streaming call with one completion")
        try:
            for chunk in chunks:
                if generate.cancelled():
                    break
                text = chunk["choices"][0]["text"]
                if text:
                    generate.send_delta(text)
        finally:
            close = getattr(chunks, "close", None)  # stops llama.cpp's generator early
            if close is not None:
                close()
        generate.finish()

    def finalize(self) -> None:
        self.llm.close()
