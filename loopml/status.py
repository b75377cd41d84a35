"""`loopml status`: what the workspace's stack is doing, and when each family's drift check runs next.

Reads the supervisor's state file (pids, restarts, health), asks Airflow's health API for
the live heartbeats, and combines the drift_check DAG's next scheduled tick with each
family's drift settings (registered-model tags, automl_tasks.monitoring.drift_settings).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from automl_tasks.core.settings import Workspace
from loopml.processes import alive

DRIFT_DAG = "drift_check"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def next_drift_check(
    *, last_check: float, every_hours: float, enabled: bool, next_tick: float | None, tick_every_s: float, now: float
) -> float | None:
    """When the scheduled drift_check will check a family next (epoch s), or None if never.

    The DAG ticks every `tick_every_s` from `next_tick`; a tick checks the family once
    `every_hours` have passed since its last check (the same 60 s slack as
    automl_tasks.monitoring.drift_check.monitored_families).
    """
    if not enabled or next_tick is None:
        return None
    due = last_check + every_hours * 3600 - 60
    if due <= next_tick:
        return next_tick
    return next_tick + math.ceil((due - next_tick) / tick_every_s) * tick_every_s


def drift_schedule_lines(ws: Workspace, client: Any, now: float) -> list[str]:
    """One line per family with a champion: its next scheduled drift check."""
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.monitoring.drift_settings import champion_families

    try:
        dag = client._call("GET", f"/api/v2/dags/{DRIFT_DAG}")
    except Exception as exc:  # status is a report: say what could not be read, go on
        return [f"  (drift_check schedule unknown: {exc})"]
    next_run = dag.get("next_dagrun_run_after")
    schedule = dag.get("timetable_summary") or "none"
    if dag.get("is_paused"):
        return [f"  drift_check is paused (schedule {schedule}): no scheduled checks"]
    if not next_run:
        return [f"  drift_check has no schedule ({schedule}): checks run only when triggered"]
    next_tick = datetime.fromisoformat(next_run).timestamp()
    tick_every_s = _tick_interval(schedule, next_tick)
    lines = [f"  drift_check schedule {schedule}, next tick {_when(next_tick)}"]
    registry = mlflow_client(ws)
    for family in champion_families(registry):
        if family.settings is None:
            lines.append(f"  {family.name}: settings unusable, not checked ({family.error})")
            continue
        settings, last = family.settings, family.last_check
        when = next_drift_check(
            last_check=last,
            every_hours=settings.check_every_hours,
            enabled=settings.enabled,
            next_tick=next_tick,
            tick_every_s=tick_every_s,
            now=now,
        )
        last_text = _when(last) if last else "never"
        if when is None:
            lines.append(f"  {family.name}: scheduled checks off (last check {last_text})")
        else:
            lines.append(
                f"  {family.name}: next check {_when(when)} (every {settings.check_every_hours:g} h, last {last_text})"
            )
    if len(lines) == 1:
        lines.append("  no family has a champion yet")
    return lines


def _tick_interval(schedule: str, next_tick: float) -> float:
    """Seconds between two ticks of a cron/preset schedule (hourly if it cannot be read)."""
    presets = {"@hourly": 3600, "@daily": 86400, "@weekly": 7 * 86400}
    if schedule in presets:
        return presets[schedule]
    try:
        from croniter import croniter

        it = croniter(schedule, datetime.fromtimestamp(next_tick, UTC))
        return it.get_next(float) - next_tick
    except Exception:
        return 3600.0


def render_status(ws: Workspace, state: dict[str, Any] | None, *, now: float | None = None) -> tuple[str, int]:
    """The `loopml status` text and exit code (0 running, 1 stopped or failed, 3 no stack)."""
    from loopml.airflow_client import AirflowClient

    now = time.time() if now is None else now
    if not state or "components" not in state:
        return f"no loopml stack on {ws.home}; start one with `loopml up`", 3
    running = state.get("status") == "running" and alive(state.get("supervisor_pid", 0))
    status = state.get("status") if state.get("status") != "running" or running else "supervisor gone"
    lines = [f"stack: {status} (supervisor pid {state.get('supervisor_pid')}, workspace {ws.home})"]
    if state.get("failure"):
        lines.append(f"  {state['failure']}")
    lines.append(f"Airflow UI: {state.get('url')}  (single-user local stack: no login)")
    if state.get("mlflow_url"):
        lines.append(f"MLflow UI:  {state['mlflow_url']}")
    lines.append(f"stack log:  {state.get('stack_log')}")
    health: dict[str, Any] = {}
    client = AirflowClient(state["url"], retry_s=0)
    if running:
        try:
            health = client._call("GET", "/api/v2/monitor/health")
        except Exception as exc:
            lines.append(f"Airflow API not answering: {exc}")
    lines.append(f"\n{'component':<14}{'pid':>8}  {'uptime':>8}  {'restarts':>8}  {'health':<11} details")
    for name, comp in state["components"].items():
        up = _ago(now - comp["started_at"]) if running and comp.get("pid") else "-"
        details = comp.get("last_exit") and f"last exit: {comp['last_exit']}" or ""
        if name == "scheduler" and health:
            beat = (health.get("scheduler") or {}).get("latest_scheduler_heartbeat")
            age = f"{_ago(now - datetime.fromisoformat(beat).timestamp())} ago" if beat else "never"
            details = f"last heartbeat {age}" + (f"; {details}" if details else "")
        lines.append(
            f"{name:<14}{comp.get('pid') or '-':>8}  {up:>8}  {comp.get('restarts', 0):>8}  "
            f"{comp.get('health', '?'):<11} {details}".rstrip()
        )
    if running:
        lines.append("\nnext scheduled drift checks:")
        lines.extend(drift_schedule_lines(ws, client, now))
    return "\n".join(lines), 0 if running else 1
