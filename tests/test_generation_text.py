"""TextStream: token bytes to shown text, split characters and stop strings, without an engine."""

from __future__ import annotations

import pytest

from qwenctl.backends.text import TextStream

# token id -> bytes, as llama_token_to_piece would give them; 4 and 5 are the two halves of "é"
VOCAB = {1: b"Hello", 2: b" wor", 3: b"ld", 4: b"\xc3", 5: b"\xa9", 6: b"!", 7: b"\n\nUser", 8: b":"}


def _run(tokens: list[int], stop=()) -> tuple[list[str], str, bool]:
    stream = TextStream(VOCAB.__getitem__, stop)
    shown = []
    for t in tokens:
        shown.append(stream.push(t))
        if stream.stopped:
            break
    return shown, stream.finish(), stream.stopped


def test_each_token_shows_its_text_and_a_split_character_waits_for_its_second_half():
    shown, rest, stopped = _run([1, 2, 3, 4, 5, 6])
    assert shown == ["Hello", " wor", "ld", "", "é", "!"] and rest == "" and not stopped


@pytest.mark.parametrize(
    ("tokens", "stop", "text", "stopped"),
    [
        ([1, 2, 3, 6], ["world"], "Hello ", True),  # a stop string across tokens is cut out
        ([1, 7, 8, 6], ["\n\nUser:"], "Hello", True),
        ([1, 2, 6], ["world"], "Hello wor!", False),  # " wor" was held back, then released
        ([1, 2], ["world"], "Hello wor", False),  # held text that never became a stop string is shown at the end
    ],
    ids=["across-tokens", "chat-turn", "released", "held-at-end"],
)
def test_stop_strings(tokens, stop, text, stopped):
    shown, rest, was_stopped = _run(tokens, stop)
    assert "".join(shown) + rest == text and was_stopped is stopped


def test_held_text_is_never_shown_twice():
    shown, rest, _ = _run([1, 2, 6], ["world"])
    assert shown == ["Hello", " ", "wor!"] and rest == ""  # only "wor", which may begin "world", waited
