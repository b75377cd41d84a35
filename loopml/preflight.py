"""Before a stack starts: every store and broker the deployment profile names answers.

One clear message naming the setting (and nothing started) instead of a stack whose
scheduler or tasks fail later on a wrong PostgreSQL URL, a broker that is down or an
MLflow server that does not answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from automl_tasks.core.profile import SETTING_ENV, DeploymentProfile
from automl_tasks.core.store_urls import database_url, is_postgres

CONNECT_TIMEOUT_S = 5


def _redacted(url: str) -> str:
    """`url` without its password (messages and logs never show one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _postgres(url: str) -> str | None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        return str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def _redis(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S).ping()
    except (redis.RedisError, ValueError) as exc:
        return str(exc)
    return None


def _http(url: str, path: str) -> str | None:
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + path, timeout=CONNECT_TIMEOUT_S, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if answer.status_code < 500 else f"HTTP {answer.status_code}"


def unreachable(profile: DeploymentProfile) -> list[str]:
    """One line per setting whose server does not answer (each names its variable)."""
    ws = profile.workspace
    checks: list[tuple[str, str, str | None]] = []
    for key, url in (
        ("airflow_db_uri", profile.airflow_db_uri),
        ("optuna_uri", ws.optuna_uri),
        ("mlflow_uri", ws.mlflow_uri),
        ("inference_log_uri", ws.inference_log_uri),
    ):
        if is_postgres(url):
            checks.append((key, url, _postgres(database_url(url))))
    if ws.mlflow_uri.startswith(("http://", "https://")):
        checks.append(("mlflow_uri", ws.mlflow_uri, _http(ws.mlflow_uri, "/health")))
    if profile.executor == "celery" and profile.broker_url.startswith(("redis://", "rediss://")):
        checks.append(("broker_url", profile.broker_url, _redis(profile.broker_url)))
    return [f"{SETTING_ENV[key]}={_redacted(url)}: {why}" for key, url, why in checks if why]
