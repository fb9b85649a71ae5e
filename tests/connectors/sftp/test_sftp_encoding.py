"""The encoding probe (connectors.sftp.encoding): UTF-8 or GBK from the streamed bytes."""

from __future__ import annotations

import pytest

from connectors.sftp.encoding import UTF8_BOM, EncodingProbe

TEXT = "公民身份号码,姓名\n360202199001011234,张三\n"


def probed(data: bytes, chunk: int) -> tuple[str, str]:
    probe = EncodingProbe()
    for start in range(0, len(data), chunk):
        probe.feed(data[start : start + chunk])
    return probe.finish()


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 16])
def test_utf8_split_anywhere_is_utf8_and_gbk_is_gb18030(chunk: int) -> None:
    assert probed(TEXT.encode("utf-8"), chunk) == ("utf-8", "valid UTF-8")
    assert probed(UTF8_BOM + TEXT.encode("utf-8"), chunk) == ("utf-8", "UTF-8 byte-order mark")
    assert probed(TEXT.encode("gbk"), chunk) == (
        "gb18030",
        "not valid UTF-8, read as GBK/GB18030",
    )


def test_a_file_cut_inside_a_character_is_not_utf8() -> None:
    assert probed(TEXT.encode("utf-8")[:-2], 1 << 16)[0] == "gb18030"
