"""loopml's Label page inside Airflow: a family's labelling batches (chosen by the
active_learning DAG), each row with a label input; labels also come as a CSV upload. Saved
labels become a `<family>.labelled` dataset version, and "Retrain" triggers drift_retrain on
it (then the promotion gate), as an ordinary DAG run. Routes join the app of `loopml_ui`.
"""

from __future__ import annotations

import html
import io
import json
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse
from loopml_families import family_name
from loopml_ui import User, authorize, current_workspace, html_page, trigger_run

router = APIRouter()

LABEL_DAG, RETRAIN_DAG = "active_learning", "drift_retrain"
LABEL_COLUMN = "label"  # the column of an uploaded CSV that holds the labels, in the batch's row order


def _batch(family: str, run_id: str) -> dict[str, Any]:
    from automl_tasks.monitoring.active_learning import batches

    found = {b["run_id"]: b for b in batches(current_workspace(), family_name(family))}.get(run_id)
    if found is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"family {family!r} has no labelling batch {run_id!r}")
    return found


@router.get("/api/label/{family}")
def label_batches(family: str, user: User) -> dict[str, Any]:
    """The family's labelling batches, newest first."""
    from automl_tasks.monitoring.active_learning import batches

    return {"family": family, "batches": batches(current_workspace(), family_name(family))}


@router.get("/api/label/{family}/{run_id}")
def label_batch(family: str, run_id: str, user: User) -> dict[str, Any]:
    """One batch: its rows and the classes to label them with ([] for numbers)."""
    from automl_tasks.data import DatasetStore
    from automl_tasks.families.loading import load_predictor
    from automl_tasks.monitoring.active_learning import label_classes

    ws = current_workspace()
    found = _batch(family, run_id)
    rows = DatasetStore(ws.datasets, ws.dvc_remote).read(found["batch_uri"])
    classes = label_classes(load_predictor(ws, family, "champion").labels)
    return {**found, "classes": classes, "rows": json.loads(rows.to_json(orient="records"))}


def _save(family: str, run_id: str, labels: list[Any], user: Any) -> dict[str, Any]:
    from automl_tasks.core.errors import UserError
    from automl_tasks.monitoring.active_learning import save_labels

    authorize(user, LABEL_DAG, "POST")
    _batch(family, run_id)
    try:
        uri = save_labels(current_workspace(), family, run_id, labels, user=user.get_name())
    except UserError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    return {"labelled_uri": uri, "rows": len(labels)}


@router.post("/api/label/{family}/{run_id}")
def save(family: str, run_id: str, user: User, labels: Annotated[list[Any], Body(embed=True)]) -> dict[str, Any]:
    """Store the batch with `labels` (one per row, in order) as a new labelled dataset version."""
    return _save(family, run_id, labels, user)


@router.post("/api/label/{family}/{run_id}/csv")
def upload(family: str, run_id: str, user: User, csv: Annotated[str, Body(embed=True)]) -> dict[str, Any]:
    """Labels from a CSV with a `label` column, one row per batch row, in the batch's order."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.StringIO(csv))
    except Exception as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"the upload is not a readable CSV: {exc}") from None
    if LABEL_COLUMN not in frame.columns:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"the CSV has no {LABEL_COLUMN!r} column; its columns are {list(frame.columns)}"
        )
    labels = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in frame[LABEL_COLUMN]]
    return _save(family, run_id, labels, user)


@router.post("/api/label/{family}/{run_id}/retrain")
def retrain(
    family: str, run_id: str, user: User, n_trials: Annotated[int | None, Body(embed=True)] = None
) -> dict[str, Any]:
    """Trigger drift_retrain on the batch's labelled rows (then the promotion gate); `n_trials`
    overrides drift_retrain's default trial budget."""
    authorize(user, RETRAIN_DAG, "POST")
    found = _batch(family, run_id)
    if not found["labelled_uri"]:
        raise HTTPException(HTTPStatus.CONFLICT, f"batch {run_id} has no labels yet: save them first")
    conf = {"family": family, "window_uri": found["labelled_uri"], "reason": f"labels of batch {run_id}"}
    if n_trials is not None:
        conf["n_trials"] = n_trials
    note = f"labels from the Label page ({found['labelled_uri']})"
    return {"dag_run_id": trigger_run(RETRAIN_DAG, conf, user, note), "dag_id": RETRAIN_DAG}


_LABEL_SCRIPT = """
<script>
function show(text, ok) { const el = document.getElementById('result'); el.textContent = text; el.className = ok ? 'ok' : 'error'; }
async function post(path, body) {
  const response = await fetch(document.body.dataset.api + path, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) { throw new Error(typeof answer.detail === 'string' ? answer.detail : JSON.stringify(answer.detail)); }
  return answer;
}
async function saveLabels() {
  const labels = Array.from(document.querySelectorAll('.label')).map(el => el.value);
  try { const a = await post('', {labels: labels}); show('saved ' + a.rows + ' labels as ' + a.labelled_uri, true); }
  catch (err) { show(err.message, false); }
}
async function uploadCsv() {
  const file = document.getElementById('csv').files[0];
  if (!file) { show('choose a CSV file with a label column first', false); return; }
  try { const a = await post('/csv', {csv: await file.text()}); show('saved ' + a.rows + ' labels as ' + a.labelled_uri, true); }
  catch (err) { show(err.message, false); }
}
async function retrain() {
  const trials = document.getElementById('trials').value;
  try { const a = await post('/retrain', trials ? {n_trials: Number(trials)} : {});
        show('drift_retrain run ' + a.dag_run_id + ' triggered', true); }
  catch (err) { show(err.message, false); }
}
</script>"""


@router.get("/label/{family}", response_class=HTMLResponse)
def label_page(family: str, request: Request, user: User, run: str = "") -> str:
    """The newest batch (or `?run=`): its rows with a label input each, upload, save, retrain."""
    root = request.scope.get("root_path", "")
    listed = label_batches(family, user)["batches"]
    if not listed:
        return html_page(
            f"Label: {family}",
            "<p>No labelling batch yet: trigger the <code>active_learning</code> DAG for this family.</p>",
        )
    found = label_batch(family, run or listed[0]["run_id"], user)
    columns = [c for c in (found["rows"][0] if found["rows"] else {}) if c != "_pool_row"]
    if found["classes"]:
        choices = "".join(f"<option>{html.escape(str(c))}</option>" for c in found["classes"])
        cell = f"<select class='label'><option value=''>?</option>{choices}</select>"
    else:
        cell = "<input class='label' size='8' placeholder='number'>"
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c)))}</td>" for c in columns) + f"<td>{cell}</td></tr>"
        for row in found["rows"]
    )
    others = " · ".join(
        f"<a href='{root}/label/{html.escape(family)}?run={b['run_id']}'>{b['run_id'][:8]}</a>"
        + (" (labelled)" if b["labelled_uri"] else "")
        for b in listed
    )
    body = f"""
<p>Batch <code>{html.escape(found["batch_uri"])}</code>, chosen by {html.escape(found["strategy"])}.
{"Labelled: <code>" + html.escape(found["labelled_uri"]) + "</code>." if found["labelled_uri"] else ""}
Batches: {others}</p>
<p id="result"></p>
<table><tr>{"".join(f"<th>{html.escape(c)}</th>" for c in columns)}<th>label</th></tr>{rows}</table>
<p><button onclick="saveLabels()">Save labels</button> or upload a CSV with a <code>label</code> column
(one row per batch row, in order): <input type="file" id="csv" accept=".csv"> <button onclick="uploadCsv()">Upload</button></p>
<p><button onclick="retrain()">Retrain with these labels</button> (drift_retrain, then the promotion gate) with
<input id="trials" size="4" placeholder="10"> trials</p>"""
    page = html_page(f"Label: {family}", body + _LABEL_SCRIPT)
    api = f"{root}/api/label/{html.escape(family)}/{found['run_id']}"
    return page.replace("<body>", f'<body data-api="{api}">', 1)
