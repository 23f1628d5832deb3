"""A model's own text handling, read from its repository: ``tokenizer.json`` (to count
tokens exactly as the model does) and ``chat_template.jinja`` (to turn chat messages into
the prompt the model was trained on). Loaded once per model directory and cached."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from control_plane.errors import FieldError, InvalidInput

__all__ = ["ModelText", "model_text"]

# One text per call: through the batch API the tokenizer would hand it to rayon's pool,
# whose idle workers then spin on the CPU the model server needs. An operator's own
# setting wins.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_PLAIN_CHAT = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@dataclass(frozen=True)
class ModelText:
    tokenizer: Tokenizer
    chat_template: str

    def count(self, text: str) -> int:
        """Tokens in ``text`` as the model's tokenizer splits it (no special tokens added:
        a chat template already wrote them into the text).

        ``encode_batch_fast`` gives the same ids as ``encode`` without computing offsets:
        a quarter less CPU on long prompts (0.99 against 1.33 ms for 2,000 tokens)."""
        if not text:
            return 0
        return len(self.tokenizer.encode_batch_fast([text], add_special_tokens=False)[0].ids)

    @functools.cached_property
    def _chat(self) -> Template:
        # Compiled once per model: compiling took 1.25 ms per request against 0.01 ms to
        # render (SmolLM2's template). A template that does not compile is not cached and
        # fails each request below.
        return _ENV.from_string(self.chat_template)

    def prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        try:
            return self._chat.render(
                messages=list(messages), add_generation_prompt=True, bos_token="", eos_token=""
            )
        except TemplateError as exc:
            raise InvalidInput(
                detail=f"The model's chat template could not render these messages: {exc}",
                errors=[FieldError("body.messages", "not renderable by the chat template")],
            ) from exc


@functools.lru_cache(maxsize=64)
def model_text(model_dir: Path) -> ModelText:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    template_file = model_dir / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else _PLAIN_CHAT
    return ModelText(tokenizer, template)
