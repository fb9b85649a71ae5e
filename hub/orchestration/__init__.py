"""Airflow DAGs generated from ``catalogs/``: one sync DAG per department, ``build_shared``
on the raw Assets the syncs emit, and ``maintenance``.

- :mod:`hub.orchestration.pipeline`: the pipeline defined once (sync -> prepare_warehouse
  -> dbt -> gate -> publish: each step's order, fan-out, Airflow task and body), and
  ``run_direct(settings)``, its steps in this process without Airflow;
- :mod:`hub.orchestration.factories`: the DAG factories the files in ``dags/`` call,
  built from the pipeline's steps;
- :mod:`hub.orchestration.tasks`: the task bodies (heavy imports inside), the pipeline's
  calling its steps' bodies;
- :mod:`hub.orchestration.embedded`: ``run_flow(settings)``, the DAGs under ``dag.test()``.

Nothing is imported here: Airflow reads its configuration on first import, and
:func:`hub.orchestration.embedded.configure_airflow` must be able to run before that.
"""
