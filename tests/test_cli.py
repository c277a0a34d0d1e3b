from click.testing import CliRunner

from qwenctl import __version__
from qwenctl.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output == f"qwenctl, version {__version__}\n"
