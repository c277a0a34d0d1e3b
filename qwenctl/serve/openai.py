"""What qwenctl adds to both engines' servers, once: the API key check, the one model id, Qwen's sampling
defaults filled into requests that leave them out, and OpenAI's error shape (which the official clients
turn into typed exceptions). serve/llamacpp.py, serve/lean.py and serve/mlx.py all answer through these.
"""

from __future__ import annotations

import hmac
import json
import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from qwenctl.backends import SamplingOptions

# the routes that generate: sampling defaults, the model id and (on MLX) the context limit apply to them
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/chat/completions")

# OpenAI API families neither engine answers here: 501 with a message (not the framework's 404, 405 or a 500)
UNSUPPORTED = {
    "/v1/embeddings": "embeddings", "/v1/audio": "audio", "/v1/images": "images", "/v1/files": "files",
    "/v1/uploads": "uploads", "/v1/fine_tuning": "fine-tuning", "/v1/moderations": "moderations",
    "/v1/batches": "batches", "/v1/responses": "the Responses API", "/v1/assistants": "assistants",
    "/v1/threads": "threads", "/v1/vector_stores": "vector stores", "/v1/realtime": "the Realtime API",
}
HEALTH_PATH = "/health"
OWNER = "qwenctl"


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


def route(method: str, path: str, model_id: str, created: int, broken: str | None = None) -> tuple[int, dict] | None:
    """qwenctl's own answer for a request, before the engine sees it, or None when the engine answers it (a
    generation route, POSTed). The same for both engines, so a client sees one API whatever serves the model.

    ``broken``: why the engine can generate no more (a lost RPC worker, mlx_lm's generation thread gone); /health
    then says so with a 503, so that a supervisor (a container's health check) restarts what no request can mend."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if path == HEALTH_PATH:
        if broken:
            return 503, {"status": "error", "model": model_id, "error": broken}
        return 200, {"status": "ok", "model": model_id}
    for prefix, what in UNSUPPORTED.items():
        if path == prefix or path.startswith(prefix + "/"):
            return 501, error_body(f"{what} ({path}) is not supported by this server: it serves the chat model "
                                   f"{model_id} (/v1/chat/completions, /v1/completions, /v1/models)",
                                   "invalid_request_error", "unsupported_endpoint")
    if path == "/v1/models" and method == "GET":
        return 200, {"object": "list", "data": [_model(model_id, created)]}
    if path.startswith("/v1/models/") and method == "GET":
        name = path[len("/v1/models/"):]
        return (200, _model(model_id, created)) if name == model_id else (404, unknown_model(name, model_id))
    if path in GENERATION_PATHS:
        if method == "POST":
            return None
        return 405, error_body(f"{path} takes POST, not {method}", "invalid_request_error", "method_not_allowed")
    return 404, error_body(f"no route {method} {path}: this server answers /v1/chat/completions, /v1/completions, "
                           "/v1/models and /health", "invalid_request_error", "not_found")


def _model(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


def well_formed_json(value: Any) -> Any:
    """A parsed JSON body with every string well-formed text (`conversation.well_formed`): a "\\ud83d" escape, half
    a character, decodes to a lone surrogate that the tokenizer cannot encode (a 500 until session 69)."""
    from qwenctl.conversation import well_formed

    if isinstance(value, str):
        return well_formed(value)
    if isinstance(value, list):
        return [well_formed_json(v) for v in value]
    if isinstance(value, dict):
        return {well_formed_json(k): well_formed_json(v) for k, v in value.items()}
    return value


def request_error(doc: dict, path: str) -> dict | None:
    """A 400 body for a generation request without what it must carry (OpenAI's required fields), asking for what
    neither engine does (several choices), or with a field of the wrong shape.

    The shapes are checked here, once for both engines, because each meets some of them with worse than a 400:
    mlx_lm's generation thread dies on a `stop` that is not text or a `top_logprobs` of true, after which every
    request fails; llama.cpp's sampler asserts on a logit bias for no token, which ends the server (`vocab_error`
    checks the ids)."""
    key = "prompt" if path == "/v1/completions" else "messages"
    value = doc.get(key)
    if value is None:
        return error_body(f"`{key}` is required", "invalid_request_error", "missing_required_parameter", key)
    if key == "messages" and (not isinstance(value, list) or not value
                              or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)):
        return _invalid("messages", "`messages` must be a non-empty list of {role, content} objects")
    if key == "prompt" and not (isinstance(value, str) or (isinstance(value, list) and len(value) == 1
                                                          and isinstance(value[0], str))):
        return _invalid("prompt", "`prompt` must be one string (this server completes one prompt a request)")
    if doc.get("n", 1) != 1:  # both engines answer one choice whatever was asked: say so rather than return fewer
        return _invalid("n", f"`n` must be 1 (got {doc['n']!r}): this server generates one choice a request; send "
                             "several requests for more")
    for count in ("max_tokens", "max_completion_tokens", "top_k", "top_logprobs"):
        # Python's True is 1, so both engines' own checks let it through; neither checks max_completion_tokens
        if doc.get(count) is not None and not _integer(doc[count]):
            return _invalid(count, f"`{count}` must be an integer, not {json.dumps(doc[count])}")
    for penalty in ("repeat_penalty", "repetition_penalty"):  # either engine's name: fill_request passes it across
        if doc.get(penalty) is not None and not (_finite_number(doc[penalty]) and doc[penalty] >= 0):
            return _invalid(penalty, f"`{penalty}` must be a number from 0 (1: none), not {json.dumps(doc[penalty])}")
    if doc.get("stop") is not None and not _text_or_texts(doc["stop"]):
        return _invalid("stop", "`stop` must be a string or a list of strings")
    seed = doc.get("seed")
    if seed is not None and not (_integer(seed) and -1 <= seed < 2**64):
        return _invalid("seed", f"`seed` must be an integer from 0 to 2**64 - 1, or -1 for a random one (got {seed!r})")
    if not isinstance(doc.get("stream_options") or {}, dict):
        return _invalid("stream_options", '`stream_options` must be an object such as {"include_usage": true}')
    bias = doc.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            return _invalid("logit_bias", "`logit_bias` must be an object of token id: bias")
        for token, value in bias.items():
            if not _finite_number(value):
                return _invalid("logit_bias", f"logit_bias[{token!r}]: the bias must be a finite number, not {value!r}")
            if doc.get("logit_bias_type") != "tokens" and _token_id(token) is None:
                return _invalid("logit_bias", f"logit_bias: {token!r} is not a token id (an integer)")
    return None


def plain_text(response_format: object) -> bool:
    """Whether a `response_format` asks for free text, as many clients send when they want nothing special."""
    return response_format is None or (isinstance(response_format, dict) and response_format.get("type") in (None, "text"))


def vocab_error(doc: dict, n_vocab: int) -> dict | None:
    """A 400 body for a logit bias on an id outside the model's ``n_vocab`` tokens. A `top_k` of the whole vocabulary
    or more becomes 0, which is what it means (no limit), as mlx_lm's sampler refuses it inside its generation
    thread, and that thread's death ends generation for every later request."""
    if doc.get("logit_bias_type") != "tokens":
        for token in doc.get("logit_bias") or {}:
            if not 0 <= (_token_id(token) or 0) < n_vocab:
                return _invalid("logit_bias", f"logit_bias: {token!r} is not a token id of this model (0 to {n_vocab - 1})")
    top_k = doc.get("top_k")
    if isinstance(top_k, int) and top_k >= n_vocab:
        doc["top_k"] = 0
    return None


def _invalid(param: str, message: str) -> dict:
    return error_body(message, "invalid_request_error", "invalid_value", param)


def _integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is no count


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text_or_texts(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _token_id(key: object) -> int | None:
    try:
        return int(str(key).strip())
    except ValueError:
        return None


def text_parts_joined(doc: dict) -> dict | None:
    """Messages whose content is a list of parts (OpenAI's form, which many clients send even for plain text) get
    their text parts joined by newlines, as the chat template takes a string; a 400 body for a part that is not
    text (this server's models read text only). Qwen2.5's template failed on the list with a 400 that did not
    say why until session 69."""
    for i, message in enumerate(doc.get("messages") or ()):
        parts = message.get("content") if isinstance(message, dict) else None
        if not isinstance(parts, list):
            continue
        texts = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                return error_body(f"messages[{i}].content: a part of type {kind!r} is not text; this server's model "
                                  "reads text only", "invalid_request_error", "invalid_value", f"messages.{i}.content")
            texts.append(part["text"])
        message["content"] = "\n".join(texts)
    return None


def unknown_model(name: object, model_id: str) -> dict:
    return error_body(
        f"The model `{name}` does not exist; this server serves `{model_id}`", "invalid_request_error", "model_not_found", "model"
    )


def fill_request(doc: dict, model_id: str, sampling: SamplingDefaults, penalty_key: str) -> dict | None:
    """Fill the sampling fields the client left out, and the model id (else the reply names the model as the engine
    does: llama_cpp.server by its file path, mlx_lm as "default_model"), and bring the rest to the form both engines
    take; return an error body for a model we do not serve.

    Clients send the repeat penalty under either engine's name (llama.cpp: repeat_penalty,
    mlx-lm: repetition_penalty); `penalty_key` is the one this engine reads.
    """
    model = doc.get("model")
    if model is not None and model != model_id:
        return unknown_model(model, model_id)
    for key in [k for k, v in doc.items() if v is None]:
        # null is OpenAI's "the default", which each engine gives a field it is not sent; sent on, a null reached
        # llama.cpp's C functions from llama_cpp.server's path (frequency_penalty: a 500) and mlx_lm's type checks
        del doc[key]
    doc["model"] = model_id
    if doc.get("seed") == -1:  # llama.cpp's "a random seed": without one both engines draw their own
        del doc["seed"]
    if isinstance(doc.get("prompt"), list):  # OpenAI's list form of one prompt (request_error allows no more)
        doc["prompt"] = doc["prompt"][0]
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
