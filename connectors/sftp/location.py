"""Where the drops are: the connection URI
``sftp://user[:password]@host:port/remote/dir?key_file=...&known_hosts=...``, and the
files listed there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from connectors.base import ConnectorError


@dataclass(frozen=True)
class SftpLocation:
    """Where the drops are: parsed from the connection URI (the password is a secret)."""

    host: str
    port: int
    username: str
    remote_dir: str
    password: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    known_hosts: Path | None = None

    @classmethod
    def parse(cls, uri: str) -> SftpLocation:
        """Parse ``sftp://user[:password]@host[:port]/dir?key_file=..&known_hosts=..``.

        Raises ConnectorError for another scheme or a URI without host or user.
        """
        parts = urlsplit(uri)
        if parts.scheme != "sftp":
            raise ConnectorError(f"expected an sftp:// connection URI, got {parts.scheme!r}://")
        if not parts.hostname or not parts.username:
            raise ConnectorError("an sftp connection URI needs user@host (sftp://user@host/dir)")
        query = parse_qs(parts.query)

        def path_param(name: str) -> Path | None:
            values = query.get(name)
            return Path(values[-1]).expanduser() if values else None

        try:
            port = parts.port or 22
        except ValueError as exc:
            raise ConnectorError(f"sftp connection URI: bad port ({exc})") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username),
            remote_dir=unquote(parts.path) or ".",
            password=unquote(parts.password) if parts.password is not None else None,
            key_file=path_param("key_file"),
            known_hosts=path_param("known_hosts"),
        )

    @property
    def display(self) -> str:
        """The location without secrets, for messages and the landing manifest."""
        return f"sftp://{self.username}@{self.host}:{self.port}{self.remote_dir}"

    @property
    def host_key_name(self) -> str:
        """The name of this server in a known_hosts file."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class RemoteFile:
    """One resource file inside a complete drop, as listed on the server."""

    path: str
    drop: str
    name: str
    size: int
    mtime: int | None
