"""The smoke test: a few seconds of real generation after loading, to catch a model that loads but runs
far too slowly, and the likeliest reason when it does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qwenctl.backends import SamplingOptions
from qwenctl.cpu_share import ThreadTime, contended, lost_cores

if TYPE_CHECKING:
    from qwenctl.backends import Session
    from qwenctl.hardware.facts import Hardware


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


SMOKE_PROMPT = "Write a short story about a lighthouse keeper."
SMOKE_MAX_TOKENS = 128


def smoke_test(session: Session, seconds: float, predicted_tps: float | None, hardware: Hardware | None) -> SmokeTest:
    """Generate for about `seconds` and compare the decode speed with the prediction.

    A reply can end early at an end-of-turn token (tiny and random models do), so replies
    are repeated with new seeds until the time is up or enough tokens were decoded.
    """
    from qwenctl.backends.reply import generate

    decoded = 0
    generated = 0
    decode_seconds = 0.0
    prompt_tps = 0.0
    started = time.monotonic()
    seed = 0
    timed = ThreadTime(session)
    while True:
        budget_left = seconds - (time.monotonic() - started)
        sampling = SamplingOptions(max_tokens=SMOKE_MAX_TOKENS, seed=seed)
        with timed:
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
    share = timed.share()
    if share is not None and contended(share):  # a warning also keeps the speed out of later plans' corrections
        warning = (f"measured {decode_tps:.1f} tok/s while {lost_cores(share, session.n_threads)}: not this machine's "
                   "speed alone, so it corrects no later plan")
    elif decoded < MIN_SMOKE_TOKENS:
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
    reply = generate(session, messages, sampling, on_text, stop)
    if reply.finish_reason == "interrupted" and time.monotonic() < deadline:
        raise KeyboardInterrupt  # the user's Ctrl-C, not our deadline: stop the whole run
    return reply


def likely_cause_of_slowness(session: Session, hardware: Hardware | None) -> str:
    """The most probable reason, in the order they are met in practice."""
    from qwenctl.backend_choice import cuda_install
    from qwenctl.hardware.facts import Backends

    gpus = hardware.gpus if hardware is not None else ()
    backends = hardware.backends if hardware is not None else None
    if session.backend == "llama.cpp" and gpus:
        if hardware is not None and isinstance(backends, Backends) and backends.llama_cpp_gpu_offload is False:
            return (
                "llama-cpp-python was built without CUDA, so the model runs on the CPU; reinstall it with "
                + cuda_install(hardware)
            )
        if session.n_gpu_layers == 0:
            return "no layer is on the GPU; check that the GPU has free memory (nvidia-smi) and rerun"
        return "part of the model runs on the CPU, or another process is using the GPU (nvidia-smi shows which)"
    return "another program may be using the CPU, or the machine is in a power-saving or throttled state"
