"""The chat loop against a real llama.cpp session on a generated qwen2 GGUF.

The model has random weights, so replies are gibberish, but tokenization, the Qwen2.5
chat template, streaming, the context window and Ctrl-C are all real.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from run_helpers import ScriptedUI, tiny_model

from qwenctl.backends import LoadOptions, SamplingOptions, load_backend
from qwenctl.chat import Chat, ask
from qwenctl.conversation import DEFAULT_SYSTEM_PROMPT, Conversation

SEEDED = SamplingOptions(seed=1)


def shown(text: str) -> str:
    """What the terminal shows of a reply: rich drops the cursor-moving control codes."""
    return text.translate({c: None for c in (7, 8, 11, 12, 13)})


@pytest.fixture(scope="module")
def session(request):
    s = load_backend("llama.cpp", tiny_model(request.config), LoadOptions(n_ctx=1024, n_threads=2))
    yield s
    s.close()


@pytest.fixture(scope="module")
def small_session(request):
    """A 256-token window, so a few turns fill it."""
    s = load_backend("llama.cpp", tiny_model(request.config), LoadOptions(n_ctx=256, n_threads=2))
    yield s
    s.close()


def run_chat(session, lines, conversation=None, on_token=None):
    ui = ScriptedUI(lines, on_token)
    chat = Chat(session, ui, conversation or Conversation(sampling=SEEDED))
    chat.run()
    return chat, ui


def test_two_turns_keep_history_in_the_template(session):
    chat, ui = run_chat(session, ["/set max_tokens 20", "hello", "and again"])
    history = chat.conv.history
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert [history[0]["content"], history[2]["content"]] == ["hello", "and again"]
    # the second prompt is the whole conversation, rendered by the model's own template
    first_reply = chat.last_reply
    assert first_reply.prompt_tokens == session.count_chat_tokens(chat.conv.messages()[:-1])
    assert 0 < first_reply.generated_tokens <= 20
    assert shown(history[1]["content"]) in ui.text and shown(history[3]["content"]) in ui.text
    prompt = session.chat_prompt(chat.conv.messages()) if hasattr(session, "chat_prompt") else None
    assert prompt is None or len(prompt) == session.count_chat_tokens(chat.conv.messages())


def test_default_system_prompt_is_qwens(session):
    chat, _ = run_chat(session, [])
    assert chat.conv.messages()[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}


def test_empty_lines_are_ignored_and_eof_ends(session):
    chat, ui = run_chat(session, ["", "   ", ""])
    assert chat.conv.history == []
    assert ui.text == ">>> \n>>>    \n>>> \n>>> "


def test_triple_quotes_make_one_multiline_message(session):
    chat, _ = run_chat(session, ["/set max_tokens 4", '"""first line', "", "second line", 'end"""'])
    assert chat.conv.history[0] == {"role": "user", "content": "first line\n\nsecond line\nend"}
    assert len(chat.conv.history) == 2


def test_slash_commands(session, tmp_path):
    path = tmp_path / "saved.json"
    chat, ui = run_chat(
        session,
        [
            "/set temperature 0",
            "/set top_p 2",
            "/set",
            "/system You answer in haiku.",
            "/system",
            "/set max_tokens 8",
            "hi",
            "/stats",
            f"/save {path}",
            "/reset",
            "/stats",
            f"/load {path}",
            "/frobnicate",
            "/rest",
            "/bye",
            "never read",
        ],
    )
    out = ui.text
    assert "temperature = 0.0" in out
    assert "error: top_p '2': must be in (0, 1]" in out
    assert "temperature=0.0  top_p=0.8  top_k=20  repeat_penalty=1.05  max_tokens=512  seed=1" in out
    assert "system prompt: You answer in haiku." in out
    assert f"saved 2 messages to {path}" in out
    assert "conversation cleared" in out
    assert "no reply yet" in out
    assert f"loaded 2 messages from {path}" in out
    assert "error: unknown command /frobnicate (type /help for the list)" in out
    assert "error: unknown command /rest (did you mean /reset? type /help for the list)" in out
    assert "never read" not in out
    # /stats after the reply: its speed and the context in use
    reply = json.loads(path.read_text())["messages"][1]["content"]
    assert "last reply: " in out and " tok/s " in out
    used = session.count_chat_tokens(
        [{"role": "system", "content": "You answer in haiku."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}]
    )
    assert f"context: {used:,} of 1,024 tokens" in out
    # the loaded conversation carries its system prompt and settings
    assert chat.conv.system == "You answer in haiku."
    assert chat.conv.sampling.max_tokens == 8 and chat.conv.sampling.temperature == 0.0


def test_help_lists_every_command(session):
    _, ui = run_chat(session, ["/help"])
    for command in ("/help", "/reset", "/system TEXT", "/set NAME VALUE", "/stats", "/save FILE", "/load FILE", "/bye"):
        assert command in ui.text
    assert "repeat_penalty" in ui.text


def test_load_refuses_a_malformed_file_and_keeps_the_chat(session, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "qwenctl.chat", "version": 1, "system": "s", "messages": [{"role": "robot"}]}')
    chat, ui = run_chat(session, ["/set max_tokens 4", "hello", f"/load {bad}", f"/load {tmp_path / 'none.json'}", "/save"])
    assert len(chat.conv.history) == 2
    errors = [line for line in ui.text.splitlines() if "error:" in line]
    assert errors == [
        f'error: {bad} is not a qwenctl chat: messages[0] must be {{"role": "user"|"assistant", "content": "..."}}',
        f"error: no such file: {tmp_path / 'none.json'}",
        "error: usage: /save FILE",
    ]


def test_ctrl_c_stops_the_reply_and_keeps_the_session(session):
    """A real SIGINT, sent to this process while the reply streams."""

    def press_ctrl_c(ui, n):
        if n == 5:
            os.kill(os.getpid(), signal.SIGINT)

    chat, ui = run_chat(session, ["/set max_tokens 400", "tell me a long story"], on_token=press_ctrl_c)
    assert chat.last_reply.finish_reason == "interrupted"
    partial = chat.conv.history[1]
    assert partial["role"] == "assistant"
    assert 5 <= chat.last_reply.generated_tokens < 400
    assert "[reply stopped]" in ui.text
    # the session goes on: the next turn sees the partial reply in its prompt
    chat.ui = ScriptedUI(["/set max_tokens 5", "go on"])
    chat.run()
    assert chat.last_reply.finish_reason in ("stop", "length")
    assert [m["role"] for m in chat.conv.history] == ["user", "assistant", "user", "assistant"]
    assert chat.last_reply.prompt_tokens == session.count_chat_tokens(chat.conv.messages()[:-1])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # our handler is gone again


def test_ctrl_c_at_the_prompt_clears_the_line(session):
    ui = ScriptedUI([])
    calls = []

    def interrupt_then_eof(prompt):
        calls.append(prompt)
        if len(calls) == 1:
            raise KeyboardInterrupt
        raise EOFError

    ui._read = interrupt_then_eof
    chat = Chat(session, ui)
    chat.run()
    assert "(Ctrl-C clears the line; /bye or Ctrl-D leaves)" in ui.text
    assert chat.conv.history == []


def test_near_the_limit_oldest_turns_go_and_the_user_is_told(small_session):
    lines = ["/set max_tokens 32"] + [f"question number {i} " + "about things " * 8 for i in range(6)]
    chat, ui = run_chat(small_session, lines)
    assert "note: the conversation is near the 256-token context limit: dropped the oldest" in ui.text
    assert chat.dropped_total > 0
    messages = chat.conv.messages()
    assert messages[0]["content"] == DEFAULT_SYSTEM_PROMPT
    assert messages[-2]["content"].startswith("question number 5")
    assert messages[1]["role"] == "user"
    # every prompt left room for its reply
    assert chat.last_reply.prompt_tokens <= 256 - 32


def test_huge_paste_is_cut_to_fit_with_a_message(small_session):
    huge = "paste " * 50_000
    chat, ui = run_chat(small_session, ["/set max_tokens 16", huge, "/stats"])
    assert "note: the message is too long for the 256-token context: kept its first " in ui.text
    kept = chat.conv.history[0]["content"]
    assert huge.startswith(kept) and 0 < len(kept) < len(huge)
    assert chat.last_reply.prompt_tokens <= 256 - 16
    assert chat.last_reply.finish_reason in ("stop", "length")


def test_system_prompt_too_long_for_the_window(small_session):
    chat, ui = run_chat(small_session, ["/system " + "rules " * 400, "hello"])
    assert "error: the system prompt alone takes more than the 128 tokens this context leaves for the prompt" in ui.text
    assert chat.conv.history == []


def test_ask_one_shot(session):
    warnings = []
    streamed = []
    result = ask(session, "hello", sampling=SamplingOptions(max_tokens=10, seed=3), on_text=streamed.append, warn=warnings.append)
    assert result.truncated_chars == 0 and warnings == []
    assert result.reply.text == "".join(streamed)
    assert 0 < result.reply.generated_tokens <= 10


def test_ask_cuts_a_huge_prompt(small_session):
    warnings = []
    result = ask(small_session, "word " * 20_000, sampling=SamplingOptions(max_tokens=8, seed=3), warn=warnings.append)
    assert result.truncated_chars > 0
    assert warnings == [
        f"the message is too long for the 256-token context: kept its first {100_000 - result.truncated_chars:,} of 100,000 characters"
    ]
