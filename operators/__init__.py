"""Thin Airflow tasks that call `automl_tasks` with small JSON-able arguments.

Importing this package is cheap: ML libraries are imported inside the task callables.
"""
