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
