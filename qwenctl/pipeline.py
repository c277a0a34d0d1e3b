"""The main job as one library function: detect -> plan -> pull -> load -> smoke test.

`qwenctl run` calls ``start`` and then chats; `qwenctl serve` calls it and then serves.
Nothing here draws: every step is announced to a ``Reporter`` (qwenctl.render.run draws
one for the terminal), which is also where the "download N GB?" question is asked.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qwenctl.backends import LoadOptions, SamplingOptions
from qwenctl.errors import ExitCode, QwenctlError

if TYPE_CHECKING:
    from qwenctl.backends import Session
    from qwenctl.hardware.facts import Hardware


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; None means "let the planner decide"."""

    size: str | None = None  # "0.5B" ... "72B"
    quant: str | None = None  # "q4_k_m" ...
    backend: str | None = None  # "llama.cpp" | "mlx"
    n_ctx: int | None = None
    profile: str | None = None  # plan for a profiled device instead of this machine
    model: str | None = None  # PATH (a .gguf file or MLX folder) or REPO[:FILE]; skips planning
    offline: bool = False  # use the local cache only; never contact the hub
    assume_yes: bool = False  # download without asking
    smoke_seconds: float = 3.0


@dataclass(frozen=True)
class SmokeTest:
    """A few seconds of real generation, to catch a model that loads but runs far too slowly."""

    generated_tokens: int
    seconds: float
    decode_tps: float
    prompt_tps: float
    predicted_tps: float | None
    warning: str | None  # set when the measured speed is far below the prediction, with the likely cause


# Below this fraction of the predicted decode speed something is wrong (not just noise):
# the estimate's own error is well inside a factor of two (docs/planning.md).
SLOW_FRACTION = 0.5

# Fewer decoded tokens than this and the speed figure means nothing.
MIN_SMOKE_TOKENS = 8


class Reporter(Protocol):
    """How the pipeline tells the user what it does (and asks before downloading)."""

    def step(self, message: str) -> None: ...

    def plan(self, plan: object) -> None: ...

    def confirm_download(self, repo: str, files: tuple[str, ...], size_bytes: int) -> bool: ...

    def smoke(self, result: SmokeTest) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Started:
    """A loaded model ready to chat or serve, and how it got there."""

    session: Session
    model_path: Path
    backend: str
    load_options: LoadOptions
    plan: object | None  # qwenctl.plan.Plan when the planner chose; None for --model
    smoke: SmokeTest | None
    hardware: Hardware | None


SMOKE_PROMPT = "Write a short story about a lighthouse keeper."
SMOKE_MAX_TOKENS = 128


def smoke_test(session: Session, seconds: float, predicted_tps: float | None, hardware: Hardware | None) -> SmokeTest:
    """Generate for about `seconds` and compare the decode speed with the prediction.

    A reply can end early at an end-of-turn token (tiny and random models do), so replies
    are repeated with new seeds until the time is up or enough tokens were decoded.
    """
    from qwenctl.chat import generate

    decoded = 0
    generated = 0
    decode_seconds = 0.0
    prompt_tps = 0.0
    started = time.monotonic()
    seed = 0
    while True:
        budget_left = seconds - (time.monotonic() - started)
        sampling = SamplingOptions(max_tokens=SMOKE_MAX_TOKENS, seed=seed)
        reply = _generate_for(session, sampling, budget_left, generate)
        generated += reply.generated_tokens
        decoded += max(0, reply.generated_tokens - 1)
        decode_seconds += reply.generation_seconds
        prompt_tps = prompt_tps or reply.prompt_tps
        seed += 1
        if decoded >= SMOKE_MAX_TOKENS or time.monotonic() - started >= seconds or seed >= 20:
            break
    decode_tps = decoded / decode_seconds if decoded and decode_seconds > 0 else 0.0
    warning = None
    if decoded < MIN_SMOKE_TOKENS:
        warning = f"only {decoded} tokens were decoded in the smoke test; too few to judge the speed"
    elif predicted_tps and decode_tps < SLOW_FRACTION * predicted_tps:
        warning = (
            f"measured {decode_tps:.1f} tok/s, far below the predicted {predicted_tps:.1f} tok/s: "
            f"{likely_cause_of_slowness(session, hardware)}"
        )
    return SmokeTest(generated, time.monotonic() - started, decode_tps, prompt_tps, predicted_tps, warning)


def _generate_for(session: Session, sampling: SamplingOptions, seconds: float, generate):
    """One reply, stopped (as if by Ctrl-C) once `seconds` have passed."""
    import threading

    stop = threading.Event()
    deadline = time.monotonic() + max(seconds, 0.0)

    def on_text(_text: str) -> None:
        if time.monotonic() >= deadline:
            stop.set()

    messages = [{"role": "user", "content": SMOKE_PROMPT}]
    return generate(session, messages, sampling, on_text, stop)


def likely_cause_of_slowness(session: Session, hardware: Hardware | None) -> str:
    """The most probable reason, in the order they are met in practice."""
    from qwenctl.hardware.facts import Backends

    gpus = hardware.gpus if hardware is not None else ()
    backends = hardware.backends if hardware is not None else None
    if session.backend == "llama.cpp" and gpus:
        if isinstance(backends, Backends) and backends.llama_cpp_gpu_offload is False:
            return (
                "llama-cpp-python was built without CUDA, so the model runs on the CPU; reinstall it with "
                'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
            )
        if session.n_gpu_layers == 0:
            return "no layer is on the GPU; check that the GPU has free memory (nvidia-smi) and rerun"
        return "part of the model runs on the CPU, or another process is using the GPU (nvidia-smi shows which)"
    return "another program may be using the CPU, or the machine is in a power-saving or throttled state"


@dataclass(frozen=True)
class ModelRef:
    """`--model`'s argument: a local file/folder, or a Hugging Face repo with an optional file."""

    path: Path | None = None
    repo: str | None = None
    filename: str | None = None


def parse_model_ref(text: str) -> ModelRef:
    """PATH if it exists, else REPO or REPO:FILE (owner/name[:file.gguf])."""
    path = Path(text).expanduser()
    if path.exists():
        return ModelRef(path=path)
    repo, _, filename = text.partition(":")
    owner, slash, name = repo.partition("/")
    if slash and owner and name and "/" not in name and not text.startswith((".", "/", "~")):
        return ModelRef(repo=repo, filename=filename or None)
    raise QwenctlError(
        f"--model {text}: no such file, and not a Hugging Face repo name",
        hint="give a path to a .gguf file or MLX folder, or OWNER/REPO[:FILE]",
        code=ExitCode.NOT_FOUND,
    )


def backend_for_path(path: Path) -> str:
    """A .gguf file is for llama.cpp, a folder with config.json for mlx."""
    if path.is_dir():
        if (path / "config.json").is_file():
            return "mlx"
        raise QwenctlError(f"{path} is a folder without config.json", hint="point --model at a .gguf file or an MLX model folder", code=ExitCode.BAD_INPUT)
    if path.suffix.lower() == ".gguf":
        return "llama.cpp"
    raise QwenctlError(f"{path} is not a .gguf file", hint="point --model at a .gguf file or an MLX model folder", code=ExitCode.BAD_INPUT)
