"""How to call an endpoint: copyable snippets for curl, the OpenAI Python client and
tritonclient (KServe V2 through the gateway), with a placeholder where the key goes."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from control_plane.endpoints.schemas import EndpointRead

KEY = "<your key>"


def snippets(endpoint: EndpointRead) -> list[dict[str, str]]:
    """Each snippet: an id, its title and its text (shown verbatim, copied as is)."""
    return [
        {"id": "curl", "title": "curl", "text": _curl(endpoint)},
        {"id": "openai", "title": "OpenAI Python client", "text": _openai(endpoint)},
        {"id": "triton", "title": "tritonclient (KServe V2)", "text": _triton(endpoint)},
    ]


def _curl(endpoint: EndpointRead) -> str:
    body = json.dumps(
        {
            "model": endpoint.name,
            "messages": [{"role": "user", "content": "Hello!"}],
            "max_tokens": 64,
        }
    )
    return (
        f"curl {endpoint.url}/chat/completions \\\n"
        f'  -H "Authorization: Bearer $API_KEY" \\\n'
        f'  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )


def _openai(endpoint: EndpointRead) -> str:
    return (
        "import openai\n\n"
        f'client = openai.OpenAI(base_url="{endpoint.url}", api_key="{KEY}")\n'
        "answer = client.chat.completions.create(\n"
        f'    model="{endpoint.name}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        "    max_tokens=64,\n"
        ")\n"
        "print(answer.choices[0].message.content)\n"
        "print(answer.usage)  # tokens in and out, as billed"
    )


def _triton(endpoint: EndpointRead) -> str:
    parts = urlsplit(endpoint.url)
    ssl = parts.scheme == "https"
    return (
        "import numpy as np\n"
        "import tritonclient.http as httpclient\n\n"
        f'client = httpclient.InferenceServerClient(url="{parts.netloc}", ssl={ssl})\n'
        'text = httpclient.InferInput("text_input", [1], "BYTES")\n'
        'text.set_data_from_numpy(np.array([b"Hello!"], dtype=np.object_))\n'
        'limit = httpclient.InferInput("max_tokens", [1], "INT32")\n'
        "limit.set_data_from_numpy(np.array([64], dtype=np.int32))\n"
        "result = client.infer(\n"
        f'    "{endpoint.name}", [text, limit],\n'
        f'    headers={{"Authorization": "Bearer {KEY}"}},\n'
        ")\n"
        'print(result.as_numpy("text_output")[0].decode())'
    )
