"""Task logs to a file while the console keeps the progress and the summaries (``hub demo``).

For the block, everything that would scroll past a user goes to one log file: Airflow's
logs (structlog and its root handler, configured when airflow is first imported), dbt's
(its stdout logger, made per invocation), the hub's and every library's Python logging,
and anything printed on ``sys.stdout`` / ``sys.stderr``. The rich consoles passed in keep
writing to the screen.
"""

from __future__ import annotations

import io
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from hub.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def task_log_path(settings: Settings, name: str, now: datetime | None = None) -> Path:
    """``HUB_HOME/logs/<name>-<UTC time>.log`` (HUB_HOME is ``state/`` by default)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return settings.home / "logs" / f"{name}-{stamp}.log"


class _Redirect(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` during the block: writes go to the log file, and
    to the screen stream after it, so a logger that kept this stream (Airflow binds its
    handlers to sys.stdout when first imported) never writes to a closed file."""

    def __init__(self, log: TextIO, screen: TextIO) -> None:
        super().__init__()
        self.target = log
        self.screen = screen

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # no colours in the log file
        return False

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def fileno(self) -> int:
        return self.target.fileno()


# logging's last-resort handler class: its stream is sys.stderr at the time it emits
_LAST_RESORT_KIND: type[Any] = type(logging.lastResort)


def _stream_handlers() -> Iterator[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            # logging's last-resort kind (dill installs one) writes to whatever
            # sys.stderr is when it emits, which the block redirects: nothing to move
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, (logging.FileHandler, _LAST_RESORT_KIND)
            ):
                yield handler


@contextmanager
def capture_task_logs(path: Path, consoles: Sequence[Console]) -> Iterator[Path]:
    """Send the block's logs and prints to ``path`` (appended, parents made); ``consoles``
    keep the screen. An exception leaving the block is written to the log too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    screen_out, screen_err = sys.stdout, sys.stderr
    pinned = [(c, getattr(c, "_file", None)) for c in consoles]
    for console, _ in pinned:
        console.file = screen_err if console.stderr else screen_out
    root = logging.getLogger()
    saved_level = root.level
    with path.open("a", encoding="utf-8", buffering=1) as log:
        out, err = _Redirect(log, screen_out), _Redirect(log, screen_err)
        # handlers made before the block (a library's, a test's) write to the log too
        screens = {id(s) for s in (screen_out, screen_err, sys.__stdout__, sys.__stderr__)}
        moved = [(h, h.stream) for h in _stream_handlers() if id(h.stream) in screens]
        for handler, _ in moved:
            handler.setStream(log)
        own = logging.StreamHandler(log)
        own.setFormatter(logging.Formatter(LOG_FORMAT))
        if not root.handlers:  # nothing configured yet (no Airflow): the hub's own logs
            root.addHandler(own)
            root.setLevel(min(saved_level or logging.INFO, logging.INFO))
        sys.stdout, sys.stderr = out, err
        try:
            yield path
        except BaseException:
            log.write(traceback.format_exc())
            raise
        finally:
            sys.stdout, sys.stderr = screen_out, screen_err
            out.target, err.target = screen_out, screen_err
            for handler, stream in moved:
                handler.setStream(stream)
            root.removeHandler(own)
            root.setLevel(saved_level)
            for console, file in pinned:
                console.file = file  # type: ignore[assignment]
