"""Chat messages become the model's prompt through its own chat template: compiled once per
model (compiling on every request cost 1.25 ms of the gateway's time), rendered per request,
and a template that cannot render these messages is the caller's clear 400, every time."""

from __future__ import annotations

import pytest
from jinja2 import Template
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from control_plane.endpoints.gateway import text
from control_plane.errors import InvalidInput

TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _model(template: str) -> text.ModelText:
    return text.ModelText(Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")), template)


def test_each_request_renders_its_own_messages() -> None:
    model = _model(TEMPLATE)
    first = model.prompt([{"role": "user", "content": "hello"}])
    second = model.prompt([{"role": "system", "content": "be brief"},
                           {"role": "user", "content": "bye"}])  # fmt: skip
    assert first == "<|user|>hello\n<|assistant|>"
    assert second == "<|system|>be brief\n<|user|>bye\n<|assistant|>"


def test_the_template_is_compiled_once_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    compile_template = text._ENV.from_string

    def counted(source: str) -> Template:
        compiled.append(source)
        return compile_template(source)

    monkeypatch.setattr(text._ENV, "from_string", counted)
    model = _model(TEMPLATE)
    for n in range(5):
        assert model.prompt([{"role": "user", "content": str(n)}]).startswith(f"<|user|>{n}")
    assert compiled == [TEMPLATE]


@pytest.mark.parametrize(
    "template",
    ["{% for m in messages %}{{ m.content }", "{{ raise_exception('roles must alternate') }}"],
    ids=["does-not-compile", "refuses-at-render"],
)
def test_a_template_that_cannot_render_the_messages_is_a_400_each_time(template: str) -> None:
    model = _model(template)
    for _ in range(2):  # a failed compile is not cached as a success
        with pytest.raises(InvalidInput) as refused:
            model.prompt([{"role": "user", "content": "hi"}])
        assert refused.value.errors[0].field == "body.messages"
