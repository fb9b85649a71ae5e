"""The connection URI (connectors.sftp.location): no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import ConnectorError
from connectors.sftp import SftpLocation


def test_a_full_uri_is_parsed_and_its_password_stays_out_of_messages() -> None:
    location = SftpLocation.parse(
        "sftp://drop%40social:s%3Acret@10.0.0.5:2222/exports/daily"
        "?key_file=/keys/id_ed25519&known_hosts=/keys/known_hosts"
    )
    assert (location.host, location.port, location.username) == ("10.0.0.5", 2222, "drop@social")
    assert location.remote_dir == "/exports/daily"
    assert location.password == "s:cret"
    assert (location.key_file, location.known_hosts) == (
        Path("/keys/id_ed25519"),
        Path("/keys/known_hosts"),
    )
    assert location.display == "sftp://drop@social@10.0.0.5:2222/exports/daily"
    assert "s:cret" not in repr(location)
    assert location.host_key_name == "[10.0.0.5]:2222"


def test_defaults_port_22_and_the_login_directory() -> None:
    location = SftpLocation.parse("sftp://social@drops.example")
    assert (location.port, location.remote_dir, location.password) == (22, ".", None)
    assert location.host_key_name == "drops.example"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://social@drops.example/x", "expected an sftp:// connection URI"),
        ("sftp://drops.example/x", "needs user@host"),
        ("sftp://social@drops.example:99999/x", "bad port"),
    ],
)
def test_a_bad_uri_is_one_clear_error(uri: str, message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        SftpLocation.parse(uri)
