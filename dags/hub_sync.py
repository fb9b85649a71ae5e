"""Airflow DAGs sync_<department>: one per department of catalogs/ (hub.orchestration)."""

from hub.orchestration.factories import load_catalog, sync_dags
from hub.settings import Settings

_settings = Settings()
globals().update(
    {dag.dag_id: dag for dag in sync_dags(_settings, load_catalog(_settings.catalog_dir))}
)
