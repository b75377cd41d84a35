"""Celery settings of loopml's worker hosts: Airflow's defaults, plus loopml's task libraries
imported once in the worker before it forks its pool.

Named by `[celery] celery_config_options` (`AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`), the hook
Airflow gives for Celery settings, so `airflow celery worker` needs no wrapper: `loopml up`,
`loopml celery-worker` and the compose file set it in the environment. Airflow itself preloads a few of its own
modules on Celery's `import_modules` signal (celery_executor_utils); loopml's come on the same
signal, which the worker sends once, in its main process, before the pool processes (and so
every task process, forked from one of them) exist. The scheduler and the api-server import
this module too, to send tasks; the signal is never sent in them, so they import nothing more.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)


@import_modules.connect
def preload_task_libraries(*_args, **_kwargs) -> None:
    """Celery's `import_modules` receiver: import loopml's task libraries in the worker."""
    from loopml.task_preload import preload

    preload()
