#!/bin/sh
# First start of the postgres service: one role and database for the warehouse, one for
# Airflow's metadata (and the Celery result backend). Passwords come from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE hub LOGIN PASSWORD '${HUB_WAREHOUSE_PASSWORD}';
CREATE DATABASE warehouse OWNER hub;
CREATE ROLE hub_audit_writer LOGIN PASSWORD '${HUB_AUDIT_WRITER_PASSWORD}';
CREATE ROLE airflow LOGIN PASSWORD '${AIRFLOW_DB_PASSWORD}';
CREATE DATABASE airflow OWNER airflow;
SQL
