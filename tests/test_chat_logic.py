"""The chat's pure parts, tested on data: context fitting, /set, saved-chat files, atomic writes.

The same logic is exercised against a real llama.cpp session in test_chat_session.py; here
a word count stands in for the tokenizer so the arithmetic can be checked exactly.
"""

from __future__ import annotations

import json
import os

import pytest

from qwenctl.backends import SamplingOptions
from qwenctl.chat import fit_to_context, reply_reserve
from qwenctl.conversation import (
    DEFAULT_SYSTEM_PROMPT,
    Conversation,
    apply_setting,
    conversation_from_dict,
    load_conversation,
    save_conversation,
)
from qwenctl.errors import ExitCode, QwenctlError


def words(messages) -> int:
    """A stand-in tokenizer: one token per word plus 2 per message for the template."""
    return sum(len(m["content"].split()) + 2 for m in messages)


SYSTEM = {"role": "system", "content": "be brief"}  # 4 "tokens"


def turn(i: int, n_words: int = 3) -> list[dict]:
    return [
        {"role": "user", "content": " ".join([f"q{i}"] * n_words)},
        {"role": "assistant", "content": " ".join([f"a{i}"] * n_words)},
    ]


def test_fits_untouched():
    history = turn(1) + turn(2)
    user = {"role": "user", "content": "hello there"}
    fitted = fit_to_context(SYSTEM, history, user, words, budget=100)
    assert fitted.messages == (SYSTEM, *history, user)
    assert (fitted.dropped_messages, fitted.truncated_chars) == (0, 0)
    assert fitted.prompt_tokens == 4 + 4 * 5 + 4


def test_drops_oldest_whole_turns_and_keeps_system():
    history = turn(1) + turn(2) + turn(3)  # 6 messages, 5 tokens each
    user = {"role": "user", "content": "x"}  # 3
    # everything: 4 + 30 + 3 = 37; budget 30 -> one turn must go (27), not just one message
    fitted = fit_to_context(SYSTEM, history, user, words, budget=30)
    assert fitted.messages == (SYSTEM, *turn(2), *turn(3), user)
    assert fitted.dropped_messages == 2
    assert fitted.prompt_tokens == 27


def test_drops_a_question_with_all_its_replies():
    # an interrupted reply followed by a retry leaves user, assistant, assistant
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "partial"},
        {"role": "assistant", "content": "more"},
        *turn(2),
    ]
    fitted = fit_to_context(SYSTEM, history, {"role": "user", "content": "x"}, words, budget=17)
    assert fitted.messages[1:3] == tuple(turn(2))
    assert fitted.dropped_messages == 3


def test_huge_message_is_cut_to_the_largest_prefix_that_fits():
    user = {"role": "user", "content": " ".join(f"w{i}" for i in range(10_000))}
    fitted = fit_to_context(SYSTEM, turn(1), user, words, budget=50)
    assert fitted.dropped_messages == 2
    assert fitted.messages[0] == SYSTEM
    kept = fitted.messages[1]["content"]
    assert user["content"].startswith(kept)
    assert words([SYSTEM, {"role": "user", "content": kept}]) == fitted.prompt_tokens <= 50
    # one more character would not fit (or would only add a partial word)
    longer = user["content"][: len(kept) + 3]
    assert words([SYSTEM, {"role": "user", "content": longer}]) > 50
    assert fitted.truncated_chars == len(user["content"]) - len(kept)


def test_system_prompt_too_long_is_a_clear_error():
    system = {"role": "system", "content": "word " * 100}
    with pytest.raises(QwenctlError, match="system prompt alone"):
        fit_to_context(system, [], {"role": "user", "content": "hi"}, words, budget=50)


@pytest.mark.parametrize(
    "n_ctx,max_tokens,expected",
    [(4096, 512, 512), (1024, 4000, 512), (32768, 8192, 8192), (2, 1, 1)],
    ids=["default", "half-cap", "large", "tiny"],
)
def test_reply_reserve(n_ctx, max_tokens, expected):
    assert reply_reserve(n_ctx, max_tokens) == expected


@pytest.mark.parametrize(
    "name,value,field,expected",
    [
        ("temperature", "0", "temperature", 0.0),
        ("top_p", "0.95", "top_p", 0.95),
        ("top_k", "40", "top_k", 40),
        ("max_tokens", "64", "max_tokens", 64),
        ("repeat_penalty", "1.1", "repeat_penalty", 1.1),
        ("seed", "7", "seed", 7),
        ("seed", "none", "seed", None),
    ],
)
def test_apply_setting(name, value, field, expected):
    assert getattr(apply_setting(SamplingOptions(), name, value), field) == expected


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("temperature", "hot", "temperature 'hot': not a number"),
        ("temperature", "-1", "temperature '-1': must be >= 0"),
        ("top_p", "0", "top_p '0': must be in (0, 1]"),
        ("top_p", "nan", "top_p 'nan': must be in (0, 1]"),
        ("max_tokens", "0", "max_tokens '0': must be >= 1"),
        ("max_tokens", "1.5", "max_tokens '1.5': not a number"),
        ("warmth", "1", "unknown setting 'warmth'"),
    ],
)
def test_apply_setting_refuses(name, value, message):
    with pytest.raises(QwenctlError) as e:
        apply_setting(SamplingOptions(), name, value)
    assert e.value.message == message
    assert e.value.code == ExitCode.BAD_INPUT


def test_defaults_are_qwens_generation_config():
    s = SamplingOptions()
    assert (s.temperature, s.top_p, s.top_k, s.repeat_penalty) == (0.7, 0.8, 20, 1.05)
    assert Conversation().system == DEFAULT_SYSTEM_PROMPT


def test_save_load_round_trip(tmp_path):
    conv = Conversation(
        system="talk like a pirate",
        history=[{"role": "user", "content": "hi ☃\n\"quoted\""}, {"role": "assistant", "content": "arr"}],
        sampling=SamplingOptions(temperature=0.2, top_k=5, seed=None),
    )
    path = tmp_path / "chat.json"
    save_conversation(conv, path)
    assert load_conversation(path) == conv
    assert json.loads(path.read_text())["schema"] == "qwenctl.chat"
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]  # no temp file left behind


GOOD = {"schema": "qwenctl.chat", "version": 1, "system": "s", "messages": [], "sampling": {}}


@pytest.mark.parametrize(
    "doc,message",
    [
        ([], 'expected a JSON object with "schema": "qwenctl.chat"'),
        ({**GOOD, "schema": "other"}, 'expected a JSON object with "schema": "qwenctl.chat"'),
        ({**GOOD, "version": 9}, "unsupported version 9 (this qwenctl reads version 1)"),
        ({**GOOD, "system": None}, '"system" must be a string'),
        ({**GOOD, "messages": {}}, '"messages" must be a list'),
        ({**GOOD, "messages": [{"role": "tool", "content": "x"}]}, 'messages[0] must be {"role": "user"|"assistant", "content": "..."}'),
        ({**GOOD, "messages": [{"role": "user"}]}, 'messages[0] must be {"role": "user"|"assistant", "content": "..."}'),
        ({**GOOD, "sampling": {"top_p": 3}}, "sampling.top_p '3': must be in (0, 1]"),
        ({**GOOD, "sampling": {"top_p": "0.5"}}, "sampling.top_p must be a number"),
        ({**GOOD, "sampling": {"mood": 1}}, "unknown sampling setting 'mood'"),
    ],
    ids=["list", "schema", "version", "system", "messages", "role", "content", "range", "type", "unknown"],
)
def test_load_refuses_malformed(doc, message):
    with pytest.raises(QwenctlError) as e:
        conversation_from_dict(doc, "f.json")
    assert e.value.message == f"f.json is not a qwenctl chat: {message}"
    assert "\n" not in e.value.one_line()


def test_load_refuses_broken_json_and_missing_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "qwenctl.chat", "messages": [')
    with pytest.raises(QwenctlError, match=r"broken.json is not valid JSON \(line 1: "):
        load_conversation(broken)
    with pytest.raises(QwenctlError, match="no such file") as e:
        load_conversation(tmp_path / "missing.json")
    assert e.value.code == ExitCode.NOT_FOUND


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    """A full disk (ENOSPC) at any step of the write keeps the previous save, whole."""
    path = tmp_path / "chat.json"
    old = Conversation(history=[{"role": "user", "content": "old"}])
    save_conversation(old, path)
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":
        real_fdopen = os.fdopen

        class HalfWrite:
            """The disk fills up halfway through the write: half the bytes land, then ENOSPC."""

            def __init__(self, fd, *args, **kwargs):
                self.f = real_fdopen(fd, *args, **kwargs)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, text):
                self.f.write(text[: len(text) // 2])
                self.f.flush()
                no_space()

        monkeypatch.setattr(os, "fdopen", HalfWrite)
    else:
        monkeypatch.setattr(os, failing, no_space)
    new = Conversation(history=[{"role": "user", "content": "new " * 10_000}])
    with pytest.raises(QwenctlError) as e:
        save_conversation(new, path)
    monkeypatch.undo()
    assert e.value.one_line() == f"cannot save the chat to {path}: no space left on the device (free some space)"
    assert e.value.code == ExitCode.DISK
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]


def test_atomic_write_creates_new_file(tmp_path):
    from qwenctl import files

    files.write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
