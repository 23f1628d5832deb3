"""Model directories as the writers leave them, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from tokenizers import Tokenizer

from control_plane.endpoints.modelrepo import read_manifest, write_tiny_model
from control_plane.endpoints.modelrepo.layout import sha256_file
from control_plane.endpoints.modelrepo.tiny import train_tokenizer, word_token_ids


class TestTinyModel:
    def test_writes_the_repository_layout(self, tmp_path: Path) -> None:
        model_dir = write_tiny_model(tmp_path, "tiny")
        expected = {
            "config.pbtxt",
            "tokenizer.json",
            "chat_template.jinja",
            "model.json",
            "1/model.py",
            "1/generate_io.py",
            "1/weights.json",
        }
        assert {str(p.relative_to(model_dir)) for p in model_dir.rglob("*.*")} == expected

    def test_config_is_a_decoupled_python_model_with_its_delay(self, tmp_path: Path) -> None:
        config = write_tiny_model(tmp_path, "tiny", token_delay_ms=20) / "config.pbtxt"
        text = config.read_text()
        assert 'name: "tiny"' in text
        assert "decoupled: true" in text
        assert 'key: "token_delay_ms" value: { string_value: "20" }' in text

    def test_training_is_deterministic(self, tmp_path: Path) -> None:
        first = (write_tiny_model(tmp_path / "a") / "tokenizer.json").read_bytes()
        second = (write_tiny_model(tmp_path / "b") / "tokenizer.json").read_bytes()
        assert first == second

    def test_manifest_hashes_the_weights(self, tmp_path: Path) -> None:
        model_dir = write_tiny_model(tmp_path)
        manifest = read_manifest(model_dir)
        assert manifest.weights_sha256 == sha256_file(model_dir / manifest.weights_uri)
        assert manifest.backend == "python"

    def test_vocabulary_words_join_without_merging(self) -> None:
        tokenizer = train_tokenizer()
        ids = word_token_ids(tokenizer)
        assert len(ids) > 50
        text = "".join(tokenizer.decode([i]) for i in ids)
        assert tokenizer.encode(text).ids == ids

    def test_chat_template_renders_chatml(self, tmp_path: Path) -> None:
        model_dir = write_tiny_model(tmp_path)
        template = jinja2.Environment(autoescape=False).from_string(  # noqa: S701 - a prompt
            (model_dir / "chat_template.jinja").read_text()
        )
        prompt = template.render(
            messages=[{"role": "user", "content": "hi"}], add_generation_prompt=True
        )
        assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        assert tokenizer.token_to_id("<|im_start|>") in tokenizer.encode(prompt).ids

    def test_weights_list_only_word_tokens(self, tmp_path: Path) -> None:
        model_dir = write_tiny_model(tmp_path)
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ids = json.loads((model_dir / "1" / "weights.json").read_text())["token_ids"]
        assert all(tokenizer.decode([i]).startswith(" ") for i in ids)

    @pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
    def test_refuses_names_triton_cannot_serve(self, tmp_path: Path, name: str) -> None:
        with pytest.raises(ValueError, match="invalid model name"):
            write_tiny_model(tmp_path, name)
