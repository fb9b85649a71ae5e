"""The manifest Airflow reads: ``target/manifest.json``, written by ``dbt parse``
(``python -m hub.build``; the Docker image does it at build time) and stamped with
:func:`hub.build.project.project_fingerprint`; parsing a DAG only compares the stamp
(:func:`current_manifest`) and never runs dbt."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hub.build.project import DBT_PROFILE, project_fingerprint
from hub.build.runner import BuildError, _invoke
from hub.settings import PROJECT_ROOT, Settings

# dbt's own default target path, git-ignored; Cosmos also takes partial_parse.msgpack from here
MANIFEST_DIR = PROJECT_ROOT / "target"
MANIFEST_NAME = "manifest.json"
FINGERPRINT_NAME = "manifest.fingerprint"


class ManifestError(RuntimeError):
    """target/manifest.json is missing or older than the dbt project; the message says
    which, and the command that writes it."""


def manifest_problem(root: Path = PROJECT_ROOT) -> str | None:
    """Why ``root/target/manifest.json`` does not describe the project as it is (missing,
    or stale), or None when it does."""
    manifest = root / "target" / MANIFEST_NAME
    stamp = root / "target" / FINGERPRINT_NAME
    if not manifest.exists() or not stamp.exists():
        return f"{manifest} is missing"
    if stamp.read_text(encoding="utf-8").strip() != project_fingerprint(root):
        return (
            f"{manifest} is stale: dbt_project.yml, models/, macros/ or seeds/ changed "
            "(or dbt was upgraded) since it was written"
        )
    return None


def current_manifest() -> Path:
    """The manifest Airflow renders ``build_shared`` from. Never runs dbt.

    Raises ManifestError when it is missing or stale, naming the command that writes it.
    """
    problem = manifest_problem()
    if problem is not None:
        raise ManifestError(f"{problem}; write it with `python -m hub.build` (dbt parse, ~5 s)")
    return MANIFEST_DIR / MANIFEST_NAME


def parse_manifest(settings: Settings | None = None, *, force: bool = False) -> Path:
    """Write ``target/manifest.json`` (and dbt's ``partial_parse.msgpack``) with
    ``dbt parse`` unless it is current (``force``: always); returns its path.

    Does not regenerate the catalog-derived files (:func:`write_project_files` does) and
    does not open the warehouse. ``settings`` only selects the profile target, so the
    partial-parse file suits that warehouse's dbt runs (Cosmos copies it to each task).
    Safe to run from several processes at once: files are replaced atomically, the
    fingerprint last. Raises BuildError when dbt cannot parse the project.
    """
    if not force and manifest_problem() is None:
        return MANIFEST_DIR / MANIFEST_NAME
    settings = settings or Settings()
    # taken before parsing: a file changed meanwhile leaves the manifest stale, not wrong
    fingerprint = project_fingerprint()
    MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=MANIFEST_DIR))
    try:
        # --profile as Cosmos passes it: dbt's partial-parse check compares the flag
        outcome = _invoke(settings, ["parse", "--profile", DBT_PROFILE], target_path=scratch)
        if not outcome.success:
            raise BuildError(
                f"dbt parse failed: {outcome.exception or 'see the log'} "
                f"(log: {scratch / 'logs' / 'dbt.log'}, removed)"
            )
        for name in ("partial_parse.msgpack", MANIFEST_NAME):
            if (scratch / name).exists():
                os.replace(scratch / name, MANIFEST_DIR / name)
        (scratch / FINGERPRINT_NAME).write_text(fingerprint + "\n", encoding="utf-8")
        os.replace(scratch / FINGERPRINT_NAME, MANIFEST_DIR / FINGERPRINT_NAME)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return MANIFEST_DIR / MANIFEST_NAME


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hub.build [--force]``: write target/manifest.json when it is stale."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["--force"]):
        print("usage: python -m hub.build [--force]", file=sys.stderr)
        return 2
    started = time.monotonic()
    problem = manifest_problem()
    try:
        path = parse_manifest(force=bool(args))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    if problem is None and not args:
        print(f"{path} is current")
    else:
        print(f"wrote {path} (dbt parse, {time.monotonic() - started:.1f} s)")
    return 0
