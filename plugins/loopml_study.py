"""loopml's Study page inside Airflow: a pipeline run's trials with filters, and the advisor's
plots (optimisation history, parameter importance, parallel coordinates, and the Pareto front
when latency on a target was searched).

The plots are the ones the advisor already renders with Optuna's plotting functions and logs
to the run's MLflow artifacts; this page shows them in place rather than embedding
optuna-dashboard, which is not in the lock and would run a second server to draw the same
figures. Routes join the app of `loopml_ui` (the plugin includes `router`).
"""

from __future__ import annotations

import html
import json
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from loopml_ui import User, authorize, current_workspace, dag_run_conf, html_page, pipeline_run_id

router = APIRouter()

#: the advisor's plots, in the order the page shows them
PLOTS = ("optimization_history.html", "param_importances.html", "parallel_coordinate.html", "pareto_front.html")


def _study_of(dag_id: str, run_id: str) -> tuple[str, str]:
    """(MLflow pipeline run, Optuna study) of a DAG run."""
    from automl_tasks.core.tags import STUDY_TAG
    from automl_tasks.core.tracking import mlflow_client

    dag_run_conf(dag_id, run_id)
    pipeline = pipeline_run_id(run_id)
    study = mlflow_client(current_workspace()).get_run(pipeline).data.tags.get(STUDY_TAG)
    if not study:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"DAG run {run_id!r} has not recorded its study (yet)")
    return pipeline, study


@router.get("/api/study/{dag_id}/{run_id}")
def study(dag_id: str, run_id: str, user: User) -> dict[str, Any]:
    """The run's trials: number, state, score (completed trials), model, duration, origin, latency,
    why it did not complete, parameters."""
    from automl_tasks.search.trial_table import trial_rows

    authorize(user, dag_id, "GET")
    pipeline, name = _study_of(dag_id, run_id)
    return {"pipeline_run": pipeline, **trial_rows(current_workspace().optuna_uri, name)}


@router.get("/api/study/{dag_id}/{run_id}/plots/{name}", response_class=HTMLResponse)
def plot(dag_id: str, run_id: str, name: str, user: User) -> str:
    """One of the advisor's plots of the run (HTML with Plotly inlined: works offline)."""
    import mlflow

    authorize(user, dag_id, "GET")
    if name not in PLOTS:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"no plot {name!r}; the plots are {list(PLOTS)}")
    pipeline, _ = _study_of(dag_id, run_id)
    try:
        return mlflow.artifacts.load_text(f"runs:/{pipeline}/advisor/{name}")
    except Exception:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"run {run_id} has no {name} (the advisor did not draw it)") from None


_STUDY_SCRIPT = """
<script>
const trials = JSON.parse(document.getElementById('trials').textContent);
function fmt(v, d) { return v === null || v === undefined ? '-' : Number(v).toFixed(d); }
function esc(v) { const el = document.createElement('span'); el.textContent = String(v); return el.innerHTML; }
function brief(v) { return v.length > 160 ? '<span title="' + esc(v).replace(/"/g, '&quot;') + '">' + esc(v.slice(0, 157)) + '...</span>' : esc(v); }
function render() {
  const state = document.getElementById('state').value, model = document.getElementById('model').value;
  const text = document.getElementById('text').value.toLowerCase(), best = document.body.dataset.best;
  const rows = trials.trials.filter(t => (!state || t.state === state) && (!model || t.model === model) &&
    (!text || JSON.stringify(t.params).toLowerCase().includes(text) || t.origin.includes(text)));
  document.getElementById('rows').innerHTML = rows.map(t =>
    '<tr' + (String(t.number) === best ? ' class="ok"' : '') + '><td>' + t.number + '</td><td>' + t.state +
    '</td><td>' + fmt(t.score, 4) + '</td><td>' + esc(t.model) + '</td><td>' + fmt(t.duration_s, 1) + '</td><td>' +
    esc(t.origin) + '</td><td>' + fmt(t.latency_ms, 3) + '</td><td>' + brief(t.note) + '</td><td><code>' +
    esc(Object.entries(t.params).map(([k, v]) => k.split('.').pop() + '=' + (typeof v === 'number' ? +v.toPrecision(4) : v)).join(' ')) +
    '</code></td></tr>').join('');
  document.getElementById('shown').textContent = rows.length + ' of ' + trials.trials.length + ' trials';
}
for (const id of ['state', 'model', 'text']) { document.getElementById(id).addEventListener('input', render); }
render();
</script>"""


@router.get("/study/{dag_id}/{run_id}", response_class=HTMLResponse)
def study_page(dag_id: str, run_id: str, request: Request, user: User) -> str:
    found = study(dag_id, run_id, user)
    root = request.scope.get("root_path", "")
    options = "".join(f"<option>{html.escape(m)}</option>" for m in sorted({t["model"] for t in found["trials"]}))
    states = "".join(f"<option>{s}</option>" for s in sorted({t["state"] for t in found["trials"]}))
    data = json.dumps(found, default=str).replace("</", "<\\/")  # JSON in a script element: no "</"
    plots = "".join(
        f'<h3>{name.removesuffix(".html").replace("_", " ")}</h3><iframe src="{root}/api/study/{html.escape(dag_id)}/'
        f'{html.escape(run_id)}/plots/{name}" style="width:100%;height:480px;border:0" loading="lazy"></iframe>'
        for name in PLOTS
    )
    body = f"""
<p>{html.escape(dag_id)} run <code>{html.escape(run_id)}</code>: study <code>{html.escape(found["study"])}</code>,
metric {html.escape(found["metric"])} ({html.escape(found["direction"])}), best trial {found["best"]}.
<a href="{root}/advisor/{html.escape(dag_id)}/{html.escape(run_id)}">Advisor</a></p>
<p>State <select id="state"><option value="">any</option>{states}</select>
Model <select id="model"><option value="">any</option>{options}</select>
Parameters or origin contain <input id="text" size="24"> <span id="shown" class="status"></span></p>
<table><thead><tr><th>#</th><th>state</th><th>score</th><th>model</th><th>seconds</th><th>origin</th>
<th>latency ms</th><th>why not complete</th><th>parameters</th></tr></thead><tbody id="rows"></tbody></table>
<script type="application/json" id="trials">{data}</script>
<h2>Plots</h2>{plots}"""
    page = html_page(f"Study: {run_id}", body + _STUDY_SCRIPT)
    return page.replace("<body>", f'<body data-best="{found["best"]}">', 1)
