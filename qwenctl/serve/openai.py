"""What qwenctl adds to both engines' servers, once: the API key check, the one model id, Qwen's sampling
defaults filled into requests that leave them out, and OpenAI's error shape (which the official clients
turn into typed exceptions). serve/llamacpp.py, serve/lean.py and serve/mlx.py all answer through these.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from qwenctl.backends import SamplingOptions

# the routes that generate: sampling defaults, the model id and (on MLX) the context limit apply to them
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/chat/completions")


@dataclass(frozen=True)
class SamplingDefaults:
    """What a request gets for each field it leaves out (Qwen2.5-Instruct's generation_config.json)."""

    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float

    @classmethod
    def qwen(cls) -> SamplingDefaults:
        s = SamplingOptions()
        return cls(s.temperature, s.top_p, s.top_k, s.repeat_penalty)


def authorized(header: str | None, api_key: str) -> bool:
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), api_key.encode())


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error shape, which the official clients turn into typed exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def unauthorized() -> dict:
    return error_body("Invalid or missing API key (send Authorization: Bearer KEY)", "invalid_request_error", "invalid_api_key")


def unknown_model(name: object, model_id: str) -> dict:
    return error_body(
        f"The model `{name}` does not exist; this server serves `{model_id}`", "invalid_request_error", "model_not_found", "model"
    )


def fill_request(doc: dict, model_id: str, sampling: SamplingDefaults, penalty_key: str) -> dict | None:
    """Fill the sampling fields the client left out; return an error body for a model we do not serve.

    Clients send the repeat penalty under either engine's name (llama.cpp: repeat_penalty,
    mlx-lm: repetition_penalty); `penalty_key` is the one this engine reads.
    """
    model = doc.get("model")
    if model is not None and model != model_id:
        return unknown_model(model, model_id)
    for other in ("repeat_penalty", "repetition_penalty"):
        if other != penalty_key and doc.get(penalty_key) is None and doc.get(other) is not None:
            doc[penalty_key] = doc[other]
    for key, value in (
        ("temperature", sampling.temperature),
        ("top_p", sampling.top_p),
        ("top_k", sampling.top_k),
        (penalty_key, sampling.repeat_penalty),
    ):
        if doc.get(key) is None:
            doc[key] = value
    return None


async def send_json(send, status: int, body: dict) -> None:
    """An ASGI JSON response (llama.cpp's app and the lean path)."""
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
