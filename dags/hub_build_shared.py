"""Airflow DAG build_shared: dbt through Cosmos (one task per seed and model, rendered from
target/manifest.json: write it with `python -m hub.build`), then gate + publish per
resource (hub.orchestration)."""

from hub.orchestration.factories import build_shared_dag, load_catalog
from hub.settings import Settings

_settings = Settings()
build_shared = build_shared_dag(_settings, load_catalog(_settings.catalog_dir))
