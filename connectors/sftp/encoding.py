"""Which text encoding a drop file is in: UTF-8 or GBK, told apart while its bytes
stream past during the download, unless the catalog declares it."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

from hub.catalog.models import Resource

if TYPE_CHECKING:
    from connectors.sftp.transport import Download

UTF8_BOM = b"\xef\xbb\xbf"


def chosen_encoding(resource: Resource, download: Download) -> tuple[str, str]:
    """The codec to read a downloaded file with, and why: the catalog's declared encoding,
    else what the probe found."""
    declared = resource.source.encoding
    if declared == "utf-8":
        return "utf-8", "declared in the catalog"
    if declared == "gbk":
        # GB18030 is a superset of GBK: it reads every GBK file and the few extra characters
        return "gb18030", "declared gbk in the catalog"
    return download.encoding, download.encoding_reason


class EncodingProbe:
    """Tells UTF-8 from GBK while the bytes stream past: a BOM or valid UTF-8 means UTF-8."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._head = b""
        self._valid = True

    def feed(self, data: bytes) -> None:
        if len(self._head) < len(UTF8_BOM):
            self._head += data[: len(UTF8_BOM) - len(self._head)]
        if self._valid:
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                self._valid = False

    def finish(self) -> tuple[str, str]:
        if self._head.startswith(UTF8_BOM):
            return "utf-8", "UTF-8 byte-order mark"
        if self._valid:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._valid = False
        if self._valid:
            return "utf-8", "valid UTF-8"
        return "gb18030", "not valid UTF-8, read as GBK/GB18030"
