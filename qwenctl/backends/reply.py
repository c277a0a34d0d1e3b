"""Stream one reply from a session: the text as it arrives, Ctrl-C to stop it between tokens, and the
finished ``Reply`` with its counts and speeds. Chat, one-shot answers and the smoke test all use it
(as mlx-lm keeps ``stream_generate`` beside the engine, not in its chat).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qwenctl.backends import GenerationEvent, SamplingOptions

if TYPE_CHECKING:
    from qwenctl.backends import Session


@dataclass(frozen=True)
class Reply:
    """One finished (or interrupted) reply and how it went."""

    text: str
    finish_reason: str  # "stop" | "length" | "interrupted"
    prompt_tokens: int
    generated_tokens: int
    prompt_seconds: float
    generation_seconds: float
    prompt_tps: float
    generation_tps: float  # decode speed: tokens after the first / time after the first


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """While a reply streams, the first Ctrl-C asks it to stop at the next token (the
    backend is left between tokens, in a consistent state); a second one raises
    KeyboardInterrupt at once, for a prompt that takes too long to process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def generate(
    session: Session,
    messages: Sequence[dict],
    sampling: SamplingOptions,
    on_text: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Reply:
    """Stream one reply, calling on_text for each piece; Ctrl-C ends it as "interrupted"."""
    stop = stop or threading.Event()
    on_text = on_text or (lambda text: None)
    pieces: list[str] = []
    last: GenerationEvent | None = None
    reason = "stop"
    events = session.chat(messages, sampling)
    try:
        with _ctrl_c_stops(stop):
            for event in events:
                if event.text:
                    pieces.append(event.text)
                    on_text(event.text)
                last = event
                if event.finish_reason:
                    reason = event.finish_reason
                    break
                if stop.is_set():
                    reason = "interrupted"
                    break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        close = getattr(events, "close", None)
        if close:
            close()
    if last is None:
        return Reply("", reason, 0, 0, 0.0, 0.0, 0.0, 0.0)
    return Reply(
        text="".join(pieces),
        finish_reason=reason,
        prompt_tokens=last.prompt_tokens,
        generated_tokens=last.generated_tokens,
        prompt_seconds=last.prompt_seconds,
        generation_seconds=last.generation_seconds,
        prompt_tps=last.prompt_tps,
        generation_tps=last.generation_tps,
    )
