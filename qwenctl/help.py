"""Examples at the end of every command's --help, and how to turn on shell completion.

Kept apart from cli.py so the commands stay short; ``add_examples`` attaches them once the commands
exist. tests/test_help.py parses every example with the real command line, so none can drift.
"""

from __future__ import annotations

import click

# command path -> (example, what it does); "" is the top level.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("qwenctl run", "plan, download (asking first), chat"),
        ("qwenctl run 7b", "a size, a tag (qwen2.5:7b), a repo, a path or ollama:NAME"),
        ("qwenctl run 7b -p 'Hi' -q > reply.txt", "one reply on stdout, nothing else"),
        ("qwenctl plan --profile raspberry-pi-5-8gb", "what a machine you don't have would run"),
        ("eval \"$(_QWENCTL_COMPLETE=bash_source qwenctl)\"", "tab completion in bash (zsh_source, fish_source too)"),
    ),
    "detect": (
        ("qwenctl detect", "CPU, memory, GPUs, disk, installed engines"),
        ("qwenctl detect --json", "the same as one JSON document"),
        ("qwenctl detect --measure", "measure the memory bandwidth now (under a second)"),
        ("qwenctl detect --save-snapshot box.json", "the raw inputs, for a bug report"),
    ),
    "plan": (
        ("qwenctl plan", "the best model for this machine, why, and every alternative"),
        ("qwenctl plan --size 7B", "the best 7B (slow machines are told, not given Q2_K)"),
        ("qwenctl plan --profile h100-80gb --json", "for another machine, as JSON"),
        ("qwenctl plan --ctx 32768 --explain-speed", "a long context, and the speed model's terms"),
        ("qwenctl plan --gpus 0,1", "only these GPUs; one GPU, a layer or a tensor split, whichever is fastest"),
        ("qwenctl plan --workers 10.0.0.2:50052,10.0.0.3:50052", "with other machines' `qwenctl worker`"),
        ("qwenctl plan --profile raspberry-pi-5-8gb-x4-cluster --size 14B", "a cluster on paper"),
    ),
    "worker": (
        ("qwenctl worker", "offer this machine's GPUs (else its CPU) on 127.0.0.1:50052"),
        ("qwenctl worker --host 10.0.0.2", "on a private network (no authentication: said at start)"),
        ("qwenctl worker --device CUDA1 --port 50053", "one GPU of several, on another port"),
    ),
    "profiles": (
        ("qwenctl profiles", "the machines --profile knows"),
    ),
    "run": (
        ("qwenctl run", "the best model for this machine, then a chat (/help inside)"),
        ("qwenctl run 7b", "a size; the plan picks the quant (7b:q8_0 picks it yourself)"),
        ("qwenctl run qwen2.5:7b-instruct-q4_k_m", "Ollama's names work too"),
        ("qwenctl run ollama:qwen2.5:7b", "a model Ollama already has, used where it lies"),
        ("qwenctl run ~/models/x.gguf --ctx 16384", "any GGUF file (any name) or MLX folder"),
        ("qwenctl run 7b -p 'Summarize RFC 2119' -q", "one reply on stdout; errors only on stderr"),
        ("git diff | qwenctl run 7b -n 200 --temperature 0", "piped text is one prompt"),
        ("qwenctl run 7b --offline", "use only what is downloaded"),
        ("qwenctl run 72b --workers 10.0.0.2:50052", "a model bigger than this machine, over a worker too"),
    ),
    "serve": (
        ("qwenctl serve", "the planned model on http://127.0.0.1:8000/v1"),
        ("qwenctl serve 7b --port 8080", "another model, another port"),
        ("qwenctl serve 7b --host 0.0.0.0 --api-key KEY", "for other machines, with a key"),
        ("qwenctl serve 7b", "then `qwenctl run 7b` chats with it: no second copy"),
    ),
    "pull": (
        ("qwenctl pull", "the planned model's files"),
        ("qwenctl pull 7b:q8_0", "the 7B in Q8_0"),
        ("qwenctl pull Qwen/Qwen2.5-7B-Instruct-GGUF", "a GGUF repo: the quant the plan picks, not all nine"),
        ("qwenctl pull Qwen/Qwen2.5-7B-Instruct-GGUF --all", "every quant, its total said first"),
    ),
    "models": (
        ("qwenctl models", "what is in the Hugging Face cache, by short name"),
        ("qwenctl models --all --json", "every repo in the cache, as JSON"),
    ),
    "rm": (
        ("qwenctl rm Qwen/Qwen2.5-7B-Instruct-GGUF:q8_0 --dry-run", "what would be freed"),
        ("qwenctl rm mlx-community/Qwen2.5-7B-Instruct-4bit --yes --json", "a whole repo, no question"),
    ),
    "bench": (
        ("qwenctl bench", "the planned model: prompt and decode tok/s, memory, vs prediction"),
        ("qwenctl bench 7b:q8_0", "any MODEL, as for run"),
        ("qwenctl bench ~/models/x.gguf -fa --json", "any file, llama-bench's method"),
        ("qwenctl bench --history", "earlier runs on this machine"),
    ),
    "ps": (
        ("qwenctl ps", "the running servers: model, memory, port, uptime"),
        ("qwenctl ps --json", "the same as JSON"),
    ),
    "config": (
        ("qwenctl config", "the config file's path and every default it sets"),
    ),
    "logs": (
        ("qwenctl logs", "the last three replies"),
        ("qwenctl logs -c", "the latest conversation"),
        ("qwenctl logs -q lighthouse -n 0 --json", "every reply that mentions a word"),
        ("qwenctl logs path", "where the SQLite file is"),
    ),
}


def epilog(examples: tuple[tuple[str, str], ...]) -> str:
    """Click rewraps help text; "\\b" keeps a paragraph as written."""
    width = max(len(example) for example, _ in examples)
    lines = [f"  {example.ljust(width)}  {what}" for example, what in examples]
    return "Examples:\n\n\b\n" + "\n".join(lines)


def add_examples(group: click.Group) -> None:
    for path, examples in EXAMPLES.items():
        command: click.Command = group
        for name in path.split():
            assert isinstance(command, click.Group)
            command = command.commands[name]
        command.epilog = epilog(examples)
