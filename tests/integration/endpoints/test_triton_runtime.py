"""The inference runtime against a real Triton 2.51 (the binary bundled in nvidia-pytriton).

One server for the whole run, in explicit model-control mode with ``tiny-chat`` and
``tiny-slow`` loaded; other models are loaded by the tests that need them.

What Triton 2.51's HTTP frontend does with these decoupled "generate" models (the
gateway relies on it, the tests below prove it):
- ``POST /v2/models/{m}/infer`` refuses any decoupled model with 501 "HTTP end point
  doesn't support models with decoupled transaction policy", even when the model sends
  exactly one response (``stream`` false); gRPC ``ModelInfer`` likewise answers
  UNIMPLEMENTED. Decoupled models are called over the gRPC stream (or /generate*).
- ``POST /v2/models/{m}/generate`` works when the model sends exactly one response
  (``stream`` absent or false): JSON ``{"text_input": ..., "max_tokens": n}`` in,
  ``{"model_name", "model_version", "text_output"}`` out. With ``"stream": true`` (several
  responses) it answers HTTP 200 (sic) with the body ``{"error": "generate expects model
  to produce exactly 1 response, use generate stream for ..."}``: check for "error".
- ``POST /v2/models/{m}/generate_stream`` answers Server-Sent Events, one
  ``data: {..., "text_output": delta}`` event per response; the empty final response
  sends no event, the stream just ends.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

from control_plane.endpoints.modelrepo import read_manifest, smollm2_gguf
from control_plane.endpoints.triton import server as server_module
from control_plane.endpoints.triton.server import (
    SHM_DIR,
    TritonPorts,
    TritonServer,
    TritonStartError,
)
from tests.conftest import need_peer
from tests.fixtures.peers.triton import (
    SMOLLM2,
    TINY,
    TINY_SLOW,
    TINY_SPARE,
    generate,
    generate_inputs,
    smollm2_unavailable,
    start_triton,
    write_smollm2,
)

pytestmark = pytest.mark.peer_triton


def tokenizer_of(triton: TritonServer, model: str) -> Tokenizer:
    return Tokenizer.from_file(str(triton.model_repository / model / "tokenizer.json"))


class TestServer:
    def test_server_is_live_and_ready_with_its_models(self, triton: TritonServer) -> None:
        client = httpclient.InferenceServerClient(triton.http_url)
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_server_metadata()["version"].startswith("2.51")
        assert client.is_model_ready(TINY)
        assert triton.pid is not None
        assert triton.http_url.startswith("127.0.0.1:")

    def test_metrics_count_inferences(self, triton: TritonServer) -> None:
        generate(triton, TINY, "count me", max_tokens=2)
        metrics = httpx.get(triton.metrics_url).text
        assert f'nv_inference_request_success{{model="{TINY}",version="1"}}' in metrics

    def test_stop_ends_its_processes_and_removes_its_shared_memory(
        self, triton_root: Path, tmp_path: Path
    ) -> None:
        server = start_triton(triton_root / "models", tmp_path, explicit=True, load=[TINY])
        pid = server.pid
        assert pid is not None
        assert list(SHM_DIR.glob(f"{server.shm_prefix}*"))
        # Read before stopping: shutdown messages can push it out of the log's tail.
        assert f"successfully loaded '{TINY}'" in server.logs()
        server.stop()
        assert not list(SHM_DIR.glob(f"{server.shm_prefix}*"))
        assert not Path(f"/proc/{pid}").exists()

    def test_start_fails_with_the_models_error_in_the_message(self, tmp_path: Path) -> None:
        broken = tmp_path / "models" / "broken" / "1"
        broken.mkdir(parents=True)
        (broken.parent / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 0\n')
        (broken / "model.py").write_text("import no_such_module_here\n")
        server = TritonServer(tmp_path / "models", work_dir=tmp_path / "work")
        with pytest.raises(TritonStartError, match="no_such_module_here"):
            server.start(timeout=30)
        assert server.pid is None

    def test_ports_taken_before_it_binds_are_chosen_again(
        self, triton_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another process binds one of the chosen ports between the check and Triton's
        bind (two suites run at once): the start is tried again on new ports."""
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([TritonPorts(http=taken, grpc=taken + 1, metrics=taken + 2)])
        real = server_module.choose_ports
        monkeypatch.setattr(server_module, "choose_ports", lambda: next(picks, None) or real())
        try:
            server = TritonServer(triton_root / "models", work_dir=tmp_path, load=[TINY],
                                  explicit=True).start(timeout=60)  # fmt: skip
            try:
                assert server.ports.http != taken
                assert httpclient.InferenceServerClient(server.http_url).is_server_live()
            finally:
                server.stop()
            given = TritonServer(triton_root / "models", work_dir=tmp_path / "given",
                                 ports=TritonPorts(http=taken, grpc=taken + 3, metrics=taken + 4),
                                 load=[TINY], explicit=True)  # fmt: skip
            with pytest.raises(TritonStartError, match="already in use"):
                given.start(timeout=60)  # ports the caller chose are not changed
        finally:
            squatter.close()


class TestModelMetadata:
    def test_metadata_shows_the_generate_inputs_and_output(self, triton: TritonServer) -> None:
        metadata = grpcclient.InferenceServerClient(triton.grpc_url).get_model_metadata(
            TINY, as_json=True
        )
        inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        assert inputs == {"text_input": "BYTES", "max_tokens": "INT32", "stream": "BOOL"}
        assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
            ("text_output", "BYTES")
        ]

    def test_config_is_decoupled_with_optional_controls(self, triton: TritonServer) -> None:
        config = httpclient.InferenceServerClient(triton.http_url).get_model_config(TINY)
        assert config["model_transaction_policy"]["decoupled"] is True
        optional = {i["name"]: i.get("optional", False) for i in config["input"]}
        assert optional == {"text_input": False, "max_tokens": True, "stream": True}

    def test_manifest_names_the_weights_and_their_hash(self, triton: TritonServer) -> None:
        manifest = read_manifest(triton.model_repository / TINY)
        assert manifest.name == TINY
        assert len(manifest.weights_sha256) == 64


class TestGenerate:
    def test_call_without_stream_gets_the_whole_text_in_one_final_response(
        self, triton: TritonServer
    ) -> None:
        answer = generate(triton, TINY, "What is a tenancy?", max_tokens=6, stream=False)
        assert answer.responses == 1
        assert answer.final
        assert answer.text.strip()

    def test_streaming_sends_one_delta_per_token_then_the_final_flag(
        self, triton: TritonServer
    ) -> None:
        streamed = generate(triton, TINY, "What is a tenancy?", max_tokens=6)
        whole = generate(triton, TINY, "What is a tenancy?", max_tokens=6, stream=False)
        assert len(streamed.deltas) == 6
        assert streamed.responses == 7  # six deltas and the empty final response
        assert streamed.final
        assert streamed.text == whole.text

    def test_same_prompt_same_answer_other_prompt_other_answer(self, triton: TritonServer) -> None:
        first = generate(triton, TINY, "hello", max_tokens=8).text
        assert generate(triton, TINY, "hello", max_tokens=8).text == first
        assert generate(triton, TINY, "goodbye", max_tokens=8).text != first

    def test_max_tokens_defaults_and_zero(self, triton: TritonServer) -> None:
        assert len(generate(triton, TINY, "hi").deltas) == 16
        nothing = generate(triton, TINY, "hi", max_tokens=0)
        assert nothing.deltas == []
        assert nothing.final

    @pytest.mark.parametrize("max_tokens", [1, 7, 64])
    def test_output_token_count_round_trips_through_tokenizer_json(
        self, triton: TritonServer, max_tokens: int
    ) -> None:
        tokenizer = tokenizer_of(triton, TINY)
        for prompt in ("hello", "Wie spät ist es? 12:30", "<|im_start|>user\nhi<|im_end|>"):
            answer = generate(triton, TINY, prompt, max_tokens=max_tokens)
            assert len(answer.deltas) == max_tokens
            assert len(tokenizer.encode(answer.text).ids) == max_tokens

    def test_cancelled_stream_stops_generation(self, triton: TritonServer) -> None:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        received: list[object] = []
        client.start_stream(callback=lambda result, error: received.append(result))
        client.async_stream_infer(TINY_SLOW, generate_inputs("long", max_tokens=200, stream=True))
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        client.stop_stream(cancel_requests=True)
        started = time.monotonic()
        # One instance: this waits for the cancelled request unless the model stopped it.
        assert len(generate(triton, TINY_SLOW, "next", max_tokens=1).deltas) == 1
        assert time.monotonic() - started < 3  # 200 tokens x 50 ms would take 10 s


class TestHttpFrontend:
    def test_infer_refuses_decoupled_models_even_for_one_response(
        self, triton: TritonServer
    ) -> None:
        text = {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["hi"]}
        answer = httpx.post(
            f"http://{triton.http_url}/v2/models/{TINY}/infer", json={"inputs": [text]}
        )
        assert answer.status_code == 501
        assert "decoupled" in answer.json()["error"]

    def test_grpc_unary_infer_refuses_decoupled_models(self, triton: TritonServer) -> None:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        with pytest.raises(InferenceServerException, match="decoupled"):
            client.infer(TINY, generate_inputs("hi", stream=False))

    def test_generate_returns_the_whole_text(self, triton: TritonServer) -> None:
        body = {"text_input": "What is a tenancy?", "max_tokens": 6}
        answer = httpx.post(f"http://{triton.http_url}/v2/models/{TINY}/generate", json=body)
        assert answer.status_code == 200
        expected = generate(triton, TINY, "What is a tenancy?", max_tokens=6).text
        assert answer.json()["text_output"] == expected

    def test_generate_refuses_several_responses(self, triton: TritonServer) -> None:
        body = {"text_input": "hi", "max_tokens": 3, "stream": True}
        answer = httpx.post(f"http://{triton.http_url}/v2/models/{TINY}/generate", json=body)
        assert answer.status_code == 200  # an error all the same
        assert "exactly 1 response" in answer.json()["error"]

    def test_generate_stream_sends_one_event_per_delta(self, triton: TritonServer) -> None:
        body = {"text_input": "What is a tenancy?", "max_tokens": 5, "stream": True}
        url = f"http://{triton.http_url}/v2/models/{TINY}/generate_stream"
        with httpx.stream("POST", url, json=body) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            events = [
                json.loads(line.removeprefix("data: "))
                for line in answer.iter_lines()
                if line.startswith("data: ")
            ]
        expected = generate(triton, TINY, "What is a tenancy?", max_tokens=5).deltas
        assert [e["text_output"] for e in events] == expected


class TestExplicitMode:
    def test_load_serve_and_unload_a_model(self, triton: TritonServer) -> None:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        assert not client.is_model_ready(TINY_SPARE)
        client.load_model(TINY_SPARE)
        try:
            assert client.is_model_ready(TINY_SPARE)
            assert len(generate(triton, TINY_SPARE, "hi", max_tokens=3).deltas) == 3
            index = {
                m["name"]: m.get("state")
                for m in client.get_model_repository_index(as_json=True)["models"]
            }
            assert index[TINY_SPARE] == "READY"
        finally:
            client.unload_model(TINY_SPARE)
        deadline = time.monotonic() + 10
        while client.is_model_ready(TINY_SPARE) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.is_model_ready(TINY_SPARE)


@pytest.fixture(scope="module")
def smollm2(triton: TritonServer) -> Iterator[str]:
    """SmolLM2 loaded into the session's server for this module's tests, then unloaded."""
    need_peer(smollm2_unavailable())
    write_smollm2(triton.model_repository)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    client.load_model(SMOLLM2)
    yield SMOLLM2
    client.unload_model(SMOLLM2)


@pytest.mark.slow
class TestSmolLM2:
    def test_answers_a_chat_prompt(self, triton: TritonServer, smollm2: str) -> None:
        import jinja2

        template = (triton.model_repository / smollm2 / "chat_template.jinja").read_text()
        environment = jinja2.Environment(autoescape=False)  # noqa: S701 - a prompt, not HTML
        prompt = environment.from_string(template).render(
            messages=[{"role": "user", "content": "Name three colours."}],
            add_generation_prompt=True,
        )
        answer = generate(triton, smollm2, prompt, max_tokens=24, timeout=60)
        assert answer.final
        assert 1 <= len(answer.deltas) <= 24
        assert answer.text.strip()

    def test_tokenizer_json_ids_equal_llama_cpp(self, triton: TritonServer, smollm2: str) -> None:
        from llama_cpp import Llama

        manifest = read_manifest(triton.model_repository / smollm2)
        gguf = smollm2_gguf()
        assert gguf is not None
        assert manifest.weights_uri == gguf.resolve().as_uri()
        llama = Llama(str(gguf), vocab_only=True, verbose=False)
        tokenizer = tokenizer_of(triton, smollm2)
        for text in SAMPLES:
            expected = llama.tokenize(text.encode(), add_bos=False, special=True)
            assert tokenizer.encode(text).ids == expected, text


SAMPLES = [
    "Hello, world!",
    "12345 + 678.90 = 1,234,567 and 2024-06-30T12:00:00Z",
    "3.14159265358979",
    "héllo wörld naïve café façade",
    "日本語のテキストと中文",
    "emoji 🙂🚀👩‍💻 ok",
    "٣٤٥ Ⅻ ½ ² ₃ ⅔",
    "  multiple   spaces\n\n\ttabs\r\nand CRLF",
    "don't you'll I'M we've",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "$1,000,000.00 USD \u2014 \u201cquotes\u201d \u2018single\u2019",
    "\uff26\uff35\uff2c\uff2c\u3000\uff57\uff49\uff44\uff54\uff48 (full width)",
    "def f(x):\n    return x**2  # code",
    "",
]
