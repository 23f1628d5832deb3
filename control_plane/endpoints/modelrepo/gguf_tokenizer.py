"""A ``tokenizer.json`` rebuilt from a GGUF file, with the same ids as llama.cpp.

The gateway counts tokens in its own process without llama.cpp, so the model directory
carries the tokenizer in Hugging Face ``tokenizers`` format: the GGUF's vocabulary,
merges and control tokens, and the pre-tokenizer llama.cpp uses for that model family.
Only GPT-2-style byte-level BPE vocabularies are supported (SmolLM2 is one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types matched as whole special tokens

# llama.cpp's pre-tokenizer families that are GPT-2's regex, with or without every digit
# split on its own (llama-vocab.cpp: "\p{N}" before the GPT-2 expression).
_DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "codeshell", "exaone", "minerva"}
_GPT2 = {"gpt-2", "default"}


class UnsupportedTokenizer(ValueError):
    pass


@dataclass(frozen=True)
class GGUFMetadata:
    """What a model directory needs from a GGUF besides its tokenizer."""

    name: str
    license: str
    chat_template: str | None


def _field(reader: GGUFReader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_THEN_GPT2:
        digits = pre_tokenizers.Digits(individual_digits=True)
        return pre_tokenizers.Sequence([digits, byte_level])
    if pre in _GPT2:
        return byte_level
    raise UnsupportedTokenizer(f"llama.cpp pre-tokenizer {pre!r} is not supported")


def tokenizer_from_gguf(path: Path) -> tuple[Tokenizer, GGUFMetadata]:
    """The GGUF's tokenizer, as ``tokenizers`` loads it, and the model's metadata."""
    reader = GGUFReader(str(path))
    kind = _field(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise UnsupportedTokenizer(f"GGUF tokenizer model {kind!r} is not byte-level BPE")
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    types: list[int] = _field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    vocab = {token: token_id for token_id, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.pre_tokenizer = _pre_tokenizer(_field(reader, "tokenizer.ggml.pre", "default"))
    tokenizer.decoder = decoders.ByteLevel()
    special = [
        AddedToken(token, special=True, normalized=False)
        for token, kind_ in zip(tokens, types, strict=True)
        if kind_ in (CONTROL, USER_DEFINED)
    ]
    tokenizer.add_special_tokens(special)
    metadata = GGUFMetadata(
        name=str(_field(reader, "general.name", Path(path).stem)),
        license=str(_field(reader, "general.license", "unknown")),
        chat_template=_field(reader, "tokenizer.chat_template"),
    )
    return tokenizer, metadata
