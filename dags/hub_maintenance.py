"""Airflow DAG maintenance: freshness and version pruning (hub.orchestration)."""

from hub.orchestration.factories import load_catalog, maintenance_dag
from hub.settings import Settings

_settings = Settings()
maintenance = maintenance_dag(_settings, load_catalog(_settings.catalog_dir))
