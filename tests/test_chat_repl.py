"""The REPL habits people bring from Ollama (issue 16, friction 6), against a real llama.cpp session on a
generated model: /set parameter, /set system, /set verbose, /show, /clear, did-you-mean for settings,
replies bounded by the context, /save asking before it replaces a file, the transcript of each reply."""

from __future__ import annotations

import json

import pytest
from run_helpers import ScriptedUI, tiny_model

from qwenctl.backends import LoadOptions, SamplingOptions, load_backend
from qwenctl.chat import Chat, Conversation


@pytest.fixture(scope="module")
def session(request):
    s = load_backend("llama.cpp", tiny_model(request.config), LoadOptions(n_ctx=512, n_threads=2))
    yield s
    s.close()


class Recorder:
    """A chat.Transcript that keeps what it is told."""

    def __init__(self):
        self.conversations = 0
        self.rows: list[tuple[int, str, str, str]] = []

    def start(self):
        self.conversations += 1

    def record(self, system, prompt, reply, sampling):
        self.rows.append((self.conversations, system, prompt, reply.text))


def chat_through(session, lines, **kwargs):
    ui = ScriptedUI(lines)
    chat = Chat(session, ui, Conversation(sampling=SamplingOptions(seed=1, max_tokens=6)), **kwargs)
    chat.run()
    return chat, ui.text


def test_set_parameter_system_and_ollamas_names(session):
    chat, out = chat_through(session, [
        "/set parameter temperature 0.2",
        "/set parameter num_predict 12",
        "/set TOP_K 5",
        "/set system You answer in French.",
        "/set max_tokens none",
        "/set parameter num_ctx 8192",
    ])
    s = chat.conv.sampling
    assert (s.temperature, s.top_k, s.max_tokens) == (0.2, 5, None)
    assert chat.conv.system == "You answer in French."
    answers = [line for line in out.splitlines() if not line.startswith(">>> ")]
    assert answers[:5] == ["temperature = 0.2", "max_tokens = 12", "top_k = 5", "system prompt set", "max_tokens = none"]
    assert "error: the context window is fixed when the model loads (leave and rerun with --ctx N)" in out


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/set temp 0.2", "error: unknown setting 'temp' (did you mean temperature?)"),
        ("/set temprature 0.2", "error: unknown setting 'temprature' (did you mean temperature?)"),
        ("/set parameter top 3", "error: unknown setting 'top' (did you mean top_p or top_k?)"),
        ("/set parameter xyz 3", "error: unknown setting 'xyz' (one of: temperature, top_p, top_k, max_tokens, repeat_penalty, seed)"),
        ("/set verbos", "error: unknown setting 'verbos' (did you mean verbose?)"),
        ("/set num_pred 5", "error: unknown setting 'num_pred' (did you mean max_tokens?)"),
        ("/set temperature", "error: usage: /set temperature VALUE (randomness; 0 = always the likeliest token)"),
        ("/show sys", "error: /show sys: nothing by that name (did you mean /show system?)"),
        ("/cleer", "error: unknown command /cleer (did you mean /clear? type /help for the list)"),
    ],
    ids=["prefix", "typo", "ambiguous", "unknown", "word", "ollama-typo", "no-value", "show", "command"],
)
def test_did_you_mean(session, line, error):
    _, out = chat_through(session, [line])
    assert error in out.splitlines()


def test_verbose_show_and_clear(session):
    transcript = Recorder()
    about = [("model", "tiny test model"), ("file", "/models/tiny.gguf")]
    chat, out = chat_through(session, ["/set verbose", "hello", "/show", "/clear", "/set quiet", "again", "/show parameters"],
                             about=about, transcript=transcript)
    lines = out.splitlines()
    assert "the speed is shown after every reply" in lines
    assert sum(line.startswith("last reply: ") for line in lines) == 1  # after "hello", not after "again"
    show = lines.index(">>> /show")
    assert lines[show + 1 : show + 5] == ["model", "  model    tiny test model", "  file     /models/tiny.gguf",
                                          lines[show + 4]]
    assert lines[show + 4].startswith("  context  ") and lines[show + 4].endswith("of 512 tokens in use (" + lines[show + 4].split("(")[1])
    assert "system prompt" in lines and "  You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in lines
    assert "  temperature     0.7" in lines and "  verbose         on" in lines and "  verbose         off" in lines
    assert "conversation cleared" in lines
    assert [m["content"] for m in chat.conv.history if m["role"] == "user"] == ["again"]  # /clear forgot "hello"
    # one conversation per chat, a new one after /clear
    assert [(conversation, prompt) for conversation, _, prompt, _ in transcript.rows] == [(1, "hello"), (2, "again")]


def test_replies_are_bounded_by_the_context_not_512(session):
    assert Conversation().sampling.max_tokens is None  # the chat's own default
    chat = Chat(session, ScriptedUI([]), Conversation(sampling=SamplingOptions(seed=1, max_tokens=None)))
    reply = chat.say("hello")  # with this seed the random model never says it is done
    assert reply.finish_reason == "length"
    assert reply.prompt_tokens + reply.generated_tokens == session.n_ctx  # it ran until the window was full


def test_save_asks_before_replacing_a_file(session, tmp_path):
    path = tmp_path / "chat.json"
    path.write_text("precious")
    _, out = chat_through(session, ["hi", f"/save {path}", "n"])
    assert f"{path} exists; replace it? [y/N] n" in out and f"not saved; {path} is as it was" in out
    assert path.read_text() == "precious"
    _, out = chat_through(session, ["hi", f"/save {path}", "y"])
    assert f"saved 2 messages to {path}" in out
    assert json.loads(path.read_text())["messages"][0] == {"role": "user", "content": "hi"}
    fresh = tmp_path / "new.json"
    _, out = chat_through(session, [f"/save {fresh}"])  # a new file: nothing to ask
    assert f"saved 0 messages to {fresh}" in out and "replace" not in out
