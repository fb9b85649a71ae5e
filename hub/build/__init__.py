"""Build: run the dbt project (raw -> staging -> audit candidates, and the catalog).

``build()`` runs ``dbt build`` in-process: the generated catalog seeds, the staging
views, one candidate table per resource in ``audit`` (the latest version of every live
key, see ``macros/latest_version.sql``; incremental, only the keys changed since the last
build), the catalog tables and views, and every dbt data and unit test. The quality gate
reads the candidates next; publish follows.

Three modules, one per seam:

- :mod:`hub.build.project`: the dbt project files generated from ``catalogs/`` (written
  before every run when the catalog changed; committed, and ``tests/build`` checks they
  are current), and the project's fingerprint;
- :mod:`hub.build.runner`: dbt run in-process against the settings' warehouse (the
  profile from ``HUB_WAREHOUSE_URL``), ``build()``, ``docs()`` and their results;
- :mod:`hub.build.manifest`: ``target/manifest.json``, which Airflow's ``build_shared``
  DAG is rendered from through Cosmos (``python -m hub.build`` writes it).
"""

from hub.build.manifest import (
    FINGERPRINT_NAME,
    MANIFEST_DIR,
    MANIFEST_NAME,
    ManifestError,
    current_manifest,
    main,
    manifest_problem,
    parse_manifest,
)
from hub.build.project import (
    CANDIDATE_COLUMNS,
    DBT_PROFILE,
    DBT_PROJECT,
    FOREIGN_KEYS,
    LOAD_COLUMNS,
    PROJECT_SOURCES,
    ForeignKey,
    order_column,
    project_fingerprint,
    render_project_files,
    stale_project_files,
    write_project_files,
)
from hub.build.runner import (
    CANDIDATES_STAMP,
    BuildError,
    BuildResult,
    NodeResult,
    ProgressCallback,
    build,
    candidates_fingerprint,
    dbt_dir,
    dbt_environment,
    dbt_target,
    docs,
    duckdb_path,
    ensure_raw_tables,
    prepare_warehouse,
    release_dbt_connections,
)

__all__ = [
    "CANDIDATES_STAMP",
    "CANDIDATE_COLUMNS",
    "DBT_PROFILE",
    "DBT_PROJECT",
    "FINGERPRINT_NAME",
    "FOREIGN_KEYS",
    "LOAD_COLUMNS",
    "MANIFEST_DIR",
    "MANIFEST_NAME",
    "PROJECT_SOURCES",
    "BuildError",
    "BuildResult",
    "ForeignKey",
    "ManifestError",
    "NodeResult",
    "ProgressCallback",
    "build",
    "candidates_fingerprint",
    "current_manifest",
    "dbt_dir",
    "dbt_environment",
    "dbt_target",
    "docs",
    "duckdb_path",
    "ensure_raw_tables",
    "main",
    "manifest_problem",
    "order_column",
    "parse_manifest",
    "prepare_warehouse",
    "project_fingerprint",
    "release_dbt_connections",
    "render_project_files",
    "stale_project_files",
    "write_project_files",
]
