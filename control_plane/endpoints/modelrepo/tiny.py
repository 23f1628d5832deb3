"""``tiny-chat``: a small deterministic built-in model for fast tests and the demo fallback.

Its tokenizer is a byte-level BPE trained here, offline and deterministically, on the
corpus shipped in ``data/corpus.txt``. Its "weights" (``1/weights.json``) are the ids of
the vocabulary's whole words with a leading space (" tenancy", " region" ...) that encode
back to exactly themselves. It answers a prompt with words drawn from that list by a
random generator seeded with the prompt's hash, so the same prompt always gets the same
answer, and the answer's text re-encodes to exactly as many tokens as were generated
(the byte-level pre-tokenizer cuts before every leading space, so no two words merge).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from control_plane.endpoints.modelrepo.layout import (
    TOKENIZER_FILE,
    VERSION,
    ModelManifest,
    generate_config,
    prepare_model_dir,
    sha256_file,
    write_common,
)

CORPUS = Path(__file__).resolve().parent / "data" / "corpus.txt"
VOCAB_SIZE = 600
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
WEIGHTS_FILE = "weights.json"
DEFAULT_MAX_TOKENS = 16

# ChatML, as SmolLM2 and many small instruct models use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def train_tokenizer(corpus: Path = CORPUS) -> Tokenizer:
    """A byte-level BPE trained on ``corpus``: the same corpus gives the same tokenizer."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus.read_text().splitlines(), trainer=trainer)
    return tokenizer


def word_token_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of tokens that are one space + letters and encode back to exactly themselves."""
    ids = []
    for token_id in range(tokenizer.get_vocab_size()):
        text = tokenizer.decode([token_id])
        word = text[1:]
        if not (text.startswith(" ") and len(word) >= 2 and word.isascii() and word.isalpha()):
            continue
        if tokenizer.encode(text).ids == [token_id]:
            ids.append(token_id)
    return ids


def write_tiny_model(
    repo: Path,
    name: str = "tiny-chat",
    *,
    token_delay_ms: int = 0,
    instances: int = 1,
) -> Path:
    """Write the tiny model into ``repo/name`` and return that directory.

    ``token_delay_ms`` sleeps before each generated token (streaming, disconnect and
    queueing tests); ``instances`` is its Triton instance count.
    """
    model_dir = prepare_model_dir(repo, name, "tiny_generate.py")
    tokenizer = train_tokenizer()
    tokenizer.save(str(model_dir / TOKENIZER_FILE))
    weights = model_dir / VERSION / WEIGHTS_FILE
    weights.write_text(json.dumps({"token_ids": word_token_ids(tokenizer)}) + "\n")
    parameters = {
        "token_delay_ms": str(token_delay_ms),
        "default_max_tokens": str(DEFAULT_MAX_TOKENS),
    }
    manifest = ModelManifest(
        name=name,
        backend="python",
        runtime="tiny (built-in, deterministic)",
        license="Proprietary",
        weights_uri=f"{VERSION}/{WEIGHTS_FILE}",
        weights_sha256=sha256_file(weights),
        description="Built-in test and demo model: seeded words from its own BPE vocabulary.",
    )
    write_common(
        model_dir,
        config=generate_config(name, parameters, instances=instances),
        chat_template=CHAT_TEMPLATE,
        manifest=manifest,
    )
    return model_dir
