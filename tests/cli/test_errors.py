"""Bad input to the CLI gets one clear line and a telling exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.instamsg_server import run_cli
from tests.support.ports import free_port


@pytest.mark.parametrize(
    ("arguments", "exit_code", "message"),
    [
        (["serve", "--mqtt-port", "abc"], 2, "--mqtt-port"),
        (["serve", "--http-port", "70000"], 2, "a port is 0 to 65535, or off"),
        (["apps", "list", "--database-url", "bogus://x"], 2, "unsupported database URL scheme"),
        (["apps", "create"], 2, "Missing option '--name'"),
        (["apps", "create", "--name", "   "], 3, "name must be 1 to 255 characters"),
        (["apps", "delete", "ak_unknown"], 3, "No app with client key"),
    ],
)
def test_usage_and_api_errors(arguments: list[str], exit_code: int, message: str, tmp_path: Path) -> None:
    result = run_cli(*arguments, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_database_is_a_connection_error(tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    for arguments in (["apps", "list"], ["db", "upgrade"]):
        result = run_cli(*arguments, "--database-url", url, "--data-dir", str(tmp_path))
        assert result.returncode == 4, result.stderr
        assert "cannot use the database" in result.stderr and "Traceback" not in result.stderr
