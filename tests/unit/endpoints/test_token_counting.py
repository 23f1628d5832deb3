"""The gateway counts tokens one text at a time, without the tokenizer's thread pool
(whose idle workers would spin on the CPU the model server needs), unless the operator
says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = (
    "import os, control_plane.endpoints.gateway.text; print(os.environ['TOKENIZERS_PARALLELISM'])"
)


def _parallelism_seen(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    if env_value is not None:
        env["TOKENIZERS_PARALLELISM"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_gateway_counts_without_the_tokenizer_thread_pool_by_default() -> None:
    assert _parallelism_seen(None) == "false"


def test_an_operator_setting_is_kept() -> None:
    assert _parallelism_seen("true") == "true"
