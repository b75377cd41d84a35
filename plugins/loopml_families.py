"""loopml's Families pages inside Airflow: each model family's versions with their lineage,
scores, latency, size and aliases, the champion history, the drift checks, the promotions
waiting for approval, and buttons that trigger `promote_model` and `batch_inference`.

Every action is an ordinary DAG run, triggered with the user's name; approvals are answered
through Airflow's own human-in-the-loop API, so they are the same approvals as in Airflow's
"Required actions" view. Routes join the app of `loopml_ui` (the plugin includes `router`).
"""

from __future__ import annotations

import html
import time
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse
from loopml_ui import User, authorize, current_workspace, html_page, trigger_run

router = APIRouter()

PROMOTE_DAG, BATCH_DAG, DRIFT_DAG, APPROVAL_TASK = "promote_model", "batch_inference", "drift_check", "approve"


def family_name(family: str) -> str:
    from automl_tasks.families.aliases import check_family_name

    try:
        return check_family_name(family)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None


def pending_approvals(family: str) -> list[dict[str, Any]]:
    """The promote_model runs of `family` waiting for a person's approval; `ready` once the
    task has waited long enough that an answer cannot race Airflow (loopml.airflow_client)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from loopml.airflow_client import hitl_settled

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.run_id, TaskInstance.start_date, DagRun.conf, DagRun.triggering_user_name)
            .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
            .where(
                TaskInstance.dag_id == PROMOTE_DAG,
                TaskInstance.task_id == APPROVAL_TASK,
                TaskInstance.state == "awaiting_input",
            )
        ).all()
    out = []
    for run_id, started, conf, user in rows:
        if (conf or {}).get("family") != family:
            continue
        out.append(
            {
                "run_id": run_id,
                "version": str((conf or {}).get("version", "")),
                "asked_by": user or "",
                "ready": hitl_settled(started),
            }
        )
    return out


# ---------------------------------------------------------------------------- JSON API


@router.get("/api/families")
def list_families(user: User) -> dict[str, Any]:
    from automl_tasks.families.overview import families

    return {"families": families(current_workspace())}


@router.get("/api/families/{family}")
def family_detail(family: str, user: User) -> dict[str, Any]:
    """The family's versions, champion history, drift checks and pending approvals."""
    from automl_tasks.core.errors import UserError
    from automl_tasks.families.overview import family_overview

    try:
        overview = family_overview(current_workspace(), family_name(family))
    except UserError as exc:
        raise HTTPException(HTTPStatus.NOT_FOUND, str(exc)) from None
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.monitoring.drift_settings import family_settings

    settings = family_settings(mlflow_client(current_workspace()), family).to_dict()
    return {**overview, "pending_approvals": pending_approvals(family), "drift_settings": settings}


@router.post("/api/families/{family}/drift_settings")
def save_drift_settings(family: str, user: User, values: Annotated[dict[str, Any], Body(embed=True)]) -> dict[str, Any]:
    """Store the family's drift settings (thresholds, window, schedule): the ones the drift_check
    form's "save" box stores. A bad value is refused naming the setting, and nothing is saved."""
    from automl_tasks.core.errors import ConfigurationError, UserError
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.promotion import check_family_exists
    from automl_tasks.monitoring.drift_settings import save_family_settings

    authorize(user, DRIFT_DAG, "POST")
    client = mlflow_client(current_workspace())
    try:
        check_family_exists(client, family_name(family))
        saved = save_family_settings(client, family, values)
    except ConfigurationError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    except UserError as exc:
        raise HTTPException(HTTPStatus.NOT_FOUND, str(exc)) from None
    return {"family": family, "drift_settings": saved.to_dict()}


@router.post("/api/families/{family}/promote")
def promote(
    family: str,
    user: User,
    action: Annotated[str, Body(embed=True)],
    version: Annotated[str, Body(embed=True)] = "latest_challenger",
) -> dict[str, Any]:
    """Trigger promote_model: `auto` (through the gate), `manual` (waits for approval) or `rollback`."""
    authorize(user, PROMOTE_DAG, "POST")
    if action not in ("auto", "manual", "rollback"):
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"action must be auto, manual or rollback; got {action!r}")
    conf = {"family": family_name(family), "action": action, **({} if action == "rollback" else {"version": version})}
    note = f"{action} from the Families page" + ("" if action == "rollback" else f": version {version}")
    return {"dag_run_id": trigger_run(PROMOTE_DAG, conf, user, note), "dag_id": PROMOTE_DAG}


@router.post("/api/families/{family}/batch_inference")
def batch_inference(
    family: str,
    user: User,
    dataset: Annotated[str, Body(embed=True)],
    model: Annotated[str, Body(embed=True)] = "champion",
) -> dict[str, Any]:
    """Trigger batch_inference of the family's `model` (an alias or a version) over `dataset`."""
    authorize(user, BATCH_DAG, "POST")
    if not dataset.strip():
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, "dataset is empty: give dataset://NAME@VERSION, a bundled name or a path"
        )
    conf = {"family": family_name(family), "dataset": dataset, "model": model}
    return {
        "dag_run_id": trigger_run(BATCH_DAG, conf, user, f"from the Families page: {model} on {dataset}"),
        "dag_id": BATCH_DAG,
    }


# ---------------------------------------------------------------------------- pages


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


_FAMILY_SCRIPT = """
<script>
function show(text, ok) { const el = document.getElementById('result'); el.textContent = text; el.className = ok ? 'ok' : 'error'; }
async function post(url, body) {
  const response = await fetch(url, {method: url.includes('/hitlDetails') ? 'PATCH' : 'POST', credentials: 'same-origin',
                                     headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) { throw new Error(typeof answer.detail === 'string' ? answer.detail : JSON.stringify(answer.detail)); }
  return answer;
}
async function act(action, version) {
  try {
    const answer = await post(document.body.dataset.api + '/promote', {action: action, version: version || 'latest_challenger'});
    show('promote_model run ' + answer.dag_run_id + ' triggered (' + action + ')', true);
  } catch (err) { show(err.message, false); }
}
async function answerApproval(runId, option) {
  try {
    await post('/api/v2/dags/promote_model/dagRuns/' + encodeURIComponent(runId) + '/taskInstances/approve/-1/hitlDetails',
               {chosen_options: [option]});
    show(option + ': promote_model run ' + runId, true);
    document.getElementById('approval-' + runId).remove();
  } catch (err) { show(err.message, false); }
}
async function saveSettings() {
  const values = {};
  for (const el of document.querySelectorAll('.setting')) { values[el.dataset.name] = el.type === 'checkbox' ? el.checked : el.value; }
  try {
    await post(document.body.dataset.api + '/drift_settings', {values: values});
    show('drift settings saved', true);
  } catch (err) { show(err.message, false); }
}
async function batch() {
  try {
    const answer = await post(document.body.dataset.api + '/batch_inference', {dataset: document.getElementById('dataset').value});
    show('batch_inference run ' + answer.dag_run_id + ' triggered', true);
  } catch (err) { show(err.message, false); }
}
</script>"""


def _trust_cell(trust: dict[str, Any]) -> str:
    """The trust report in a few words: what was measured, nothing for what was not."""
    parts = []
    if trust["attack_auc"] is not None:
        parts.append(f"attack AUC {trust['attack_auc']:.3f}")
    if trust["robust_accuracy"] is not None:
        parts.append(f"{trust['robust_accuracy']:.0%} under attack")
    if trust["noise_retained"] is not None:
        parts.append(f"keeps {trust['noise_retained']:.0%} under noise")
    if trust["dp_epsilon"] is not None:
        parts.append(f"DP ε {trust['dp_epsilon']:.3g}")
    return " · ".join(parts) or "no report"


def _trust_notes(trust: dict[str, Any]) -> str:
    return f"not measured: {trust['skipped']}" if trust["skipped"] else "every part measured"


def _gate_line(gate: dict[str, Any]) -> str:
    """The family's stored gate's trust thresholds, as a sentence."""
    if "error" in gate:
        return f"The family's stored gate cannot be read: {gate['error']}"
    rules = [
        f"{what} {bound} {gate[name]:g}"
        for name, what, bound in (
            ("max_attack_auc", "membership-attack AUC", "≤"),
            ("min_robust_accuracy", "accuracy under attack", "≥"),
            ("max_dp_epsilon", "DP epsilon", "≤"),
        )
        if gate.get(name)
    ]
    if not rules:
        return "The family's gate sets no trust threshold (promote_model's form can store some)."
    return "The family's gate requires " + ", ".join(rules) + " for every automatic promotion."


@router.get("/families", response_class=HTMLResponse)
def families_page(request: Request, user: User) -> str:
    root = request.scope.get("root_path", "")
    rows = "".join(
        f"<tr><td><a href='{root}/families/{html.escape(f['family'])}'>{html.escape(f['family'])}</a></td>"
        f"<td>{html.escape(str(f['champion'] or '-'))}</td><td>{html.escape(str(f['challenger'] or '-'))}</td>"
        f"<td>{f['versions']}</td><td>{html.escape(f['last_drift_check'] or '-')}</td></tr>"
        for f in list_families(user)["families"]
    )
    table = (
        "<table><tr><th>family</th><th>champion</th><th>challenger</th><th>versions</th><th>last drift check</th></tr>"
        + rows
        + "</table>"
        if rows
        else "<p>No model family is registered yet: run a pipeline first.</p>"
    )
    return html_page("Model families", table)


@router.get("/families/{family}", response_class=HTMLResponse)
def family_page(family: str, request: Request, user: User) -> str:
    """One family: lineage, scores, aliases, history, drift, approvals and actions."""
    found = family_detail(family, user)
    root = request.scope.get("root_path", "")
    approvals = "".join(
        f"<tr id='approval-{html.escape(a['run_id'])}'><td>{html.escape(a['run_id'])}</td><td>v{html.escape(a['version'])}</td>"
        f"<td>{html.escape(a['asked_by'])}</td><td>"
        + (
            f"<button onclick=\"answerApproval('{html.escape(a['run_id'])}', 'Approve')\">Approve</button>"
            f"<button onclick=\"answerApproval('{html.escape(a['run_id'])}', 'Reject')\">Reject</button>"
            if a["ready"]
            else "waiting for Airflow (reload in a few seconds)"
        )
        + "</td></tr>"
        for a in found["pending_approvals"]
    )
    versions = "".join(
        f"<tr id='version-{v['version']}'><td>v{v['version']}</td><td>{html.escape(', '.join(v['aliases']))}</td><td>{html.escape(v['derivation'])}"
        f"{' of v' + html.escape(v['parent']) if v['parent'] else ''}</td><td>{html.escape(v['metric'])}</td>"
        f"<td>{_number(v['test_score'])}</td><td>{_number(v['eval_score'])}</td><td>{_number(v['latency_ms'], 3)}</td>"
        f"<td>{_number(v['size_kb'], 1)}</td><td>{html.escape(v['runtime'])}</td>"
        f"<td title='feature pipeline version (MLflow experiment loopml-feature-pipelines)'>"
        f"{html.escape(v['feature_pipeline'][:8]) or 'raw columns'}</td>"
        f"<td class='trust' title='{html.escape(_trust_notes(v['trust']))}'>{html.escape(_trust_cell(v['trust']))}</td>"
        f"<td class='status'>{html.escape(v['promotion'].get('decision', ''))}"
        f"{' (approved by ' + html.escape(v['promotion']['approved_by']) + ')' if v['promotion'].get('approved_by') else ''}</td>"
        f"<td><button onclick=\"act('auto', '{v['version']}')\">Promote through the gate</button>"
        f"<button onclick=\"act('manual', '{v['version']}')\">Promote (needs approval)</button></td></tr>"
        for v in found["versions"]
    )
    checks = "".join(
        f"<tr><td>{time.strftime('%Y-%m-%d %H:%M', time.gmtime(c['at']))}</td><td>{html.escape(c['status'])}</td>"
        f"<td>{_number(c['share_drifted'], 2)}</td>"
        f"<td><a href='{root}/go/mlflow/run/{c['experiment_id']}/{c['run_id']}'>report</a></td></tr>"
        for c in found["drift_checks"]
    )
    settings = "".join(
        f"<tr><td><label for='setting-{name}'>{name.replace('_', ' ')}</label></td><td>"
        + (
            f"<input type='checkbox' class='setting' id='setting-{name}' data-name='{name}'{' checked' if value else ''}>"
            if isinstance(value, bool)
            else f"<input class='setting' id='setting-{name}' data-name='{name}' value='{html.escape(str(value if value is not None else ''))}'>"
        )
        + "</td></tr>"
        for name, value in found["drift_settings"].items()
    )
    body = f"""
<p><a href="{root}/families">all families</a> · <a href="{root}/spaces/{html.escape(family)}">search-space versions</a>
· <a href="{root}/label/{html.escape(family)}">label data</a>
· champion history: {html.escape(" → ".join("v" + v for v in found["champion_history"]) or "none yet")}</p>
<p id="result"></p>
<h2>Waiting for approval</h2>
{"<table><tr><th>promote_model run</th><th>version</th><th>asked by</th><th></th></tr>" + approvals + "</table>" if approvals else "<p>No promotion is waiting for approval.</p>"}
<h2>Versions</h2>
<table><tr><th>version</th><th>aliases</th><th>derivation</th><th>metric</th><th>test</th><th>evaluation</th>
<th>latency ms</th><th>size KB</th><th>runtime</th><th>features</th>
<th title="trust report: membership-attack AUC (0.5 = no leak), accuracy under attack, share of the score kept under noise, DP epsilon">trust</th>
<th>promotion</th><th></th></tr>{versions}</table>
<p class="status">{html.escape(_gate_line(found["gate"]))}</p>
<p><button onclick="act('rollback')">Roll back the champion</button>
Batch inference of the champion on <input id="dataset" size="40" placeholder="dataset://NAME@VERSION or a path">
<button onclick="batch()">Run</button></p>
<h2>Drift settings</h2>
<p class="status">Used by the scheduled drift checks of this family (and as the defaults of a manual check).</p>
<table>{settings}</table><button onclick="saveSettings()">Save drift settings</button>
<h2>Drift checks</h2>
{"<table><tr><th>when (UTC)</th><th>status</th><th>share drifted</th><th></th></tr>" + checks + "</table>" if checks else "<p>No drift check has run yet.</p>"}"""
    page = html_page(f"Model family {family}", body + _FAMILY_SCRIPT)
    api = f"{root}/api/families/{html.escape(family)}"
    return page.replace("<body>", f'<body data-api="{api}">', 1)
