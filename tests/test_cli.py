from click.testing import CliRunner

from qwenctl import __version__
from qwenctl.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output == f"qwenctl, version {__version__}\n"


def test_error_lines_keep_square_brackets(capsys):
    """An install hint like qwenctl[server] must reach the user intact, not be eaten as markup."""
    from qwenctl import render

    render.error("needs fastapi (pip install 'qwenctl[server]')")
    assert "pip install 'qwenctl[server]'" in capsys.readouterr().err


def test_the_library_api_is_exported_lazily():
    """`import qwenctl` loads none of the API's modules; each name resolves on first use to the function."""
    import subprocess
    import sys

    code = ("import sys, qwenctl; before = {m for m in sys.modules if m.startswith('qwenctl.')}; "
            "from qwenctl.backends import load_backend; from qwenctl.fetch import pull; from qwenctl.hardware import detect; "
            "assert (qwenctl.detect, qwenctl.pull, qwenctl.load_backend) == (detect, pull, load_backend); print(sorted(before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
