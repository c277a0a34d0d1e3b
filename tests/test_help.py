"""Every command's --help ends with examples, every example parses with the real command line, and shell
completion works as the top-level help says (issue 16: "--help with examples", "shell completion")."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import warnings

import click
import pytest
from click.testing import CliRunner

from qwenctl.cli import cli
from qwenctl.help import EXAMPLES


def _parse(args: list[str]) -> None:
    """What click does with a command line, short of running it: a bad option or argument raises UsageError."""
    command: click.Command = cli
    ctx = command.make_context("qwenctl", list(args))
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args, 8.1 needs it
        warnings.simplefilter("ignore", DeprecationWarning)
        while isinstance(command, click.Group) and (ctx.protected_args or ctx.args):
            name, *rest = [*ctx.protected_args, *ctx.args]
            command = command.commands[name]
            ctx = command.make_context(name, rest, parent=ctx)


def test_every_command_has_examples():
    assert {""} | set(cli.commands) == set(EXAMPLES)
    for name in cli.commands:
        result = CliRunner().invoke(cli, [name, "--help"], catch_exceptions=False)
        assert result.exit_code == 0
        assert "Examples:" in result.output and f"qwenctl {name}" in result.output.split("Examples:")[1]


@pytest.mark.parametrize(
    "example", [e for examples in EXAMPLES.values() for e, _ in examples if e.split("|")[-1].split()[0] == "qwenctl"],
)
def test_every_example_parses(example):
    line = example.split("|")[-1].strip()
    words = shlex.split(line)
    if ">" in words:
        words = words[: words.index(">")]
    assert words[0] == "qwenctl"
    _parse(words[1:])


def test_shell_completion_as_the_help_says():
    env = {**os.environ, "_QWENCTL_COMPLETE": "bash_source"}
    script = subprocess.run([sys.executable, "-c", "from qwenctl.cli import main; main()"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_qwenctl_completion()" in script.stdout
    env = {**os.environ, "_QWENCTL_COMPLETE": "bash_complete", "COMP_WORDS": "qwenctl ru", "COMP_CWORD": "1"}
    words = subprocess.run([sys.executable, "-c", "from qwenctl.cli import main; main()"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert words.stdout.split() == ["plain,run"]
