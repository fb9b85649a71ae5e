"""The portal's words: one message catalogue per language (``messages/<lang>.yml``).

Chinese is the default; English is chosen with the language switch (a cookie). A key
missing from a catalogue is a bug, caught by the tests (both catalogues hold the same
keys, and every key the templates and views use exists); at run time it shows the key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
MESSAGES_DIR = Path(__file__).parent / "messages"


@cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of ``language`` (flat keys such as ``nav.catalog``)."""
    data = yaml.safe_load((MESSAGES_DIR / f"{language}.yml").read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in _flatten(data).items()}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


class Translator:
    """``t("nav.catalog")``, ``t("queue.due", days=3)``: the message in one language."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.messages = catalogue(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.messages.get(key, key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self.messages
