"""loopml's pages inside Airflow: the advisor loop (accept or dismiss a suggestion, edit the
search space, re-run warm-started) and the search-space versions of a family.

A FastAPI app that the plugin mounts on Airflow's api-server at `/loopml`. Every route
asks Airflow's auth manager (`get_user`: the UI's session cookie or a bearer token) and
checks the DAG permission the action needs; a re-run is an ordinary DAG run, triggered
with Airflow's own `trigger_dag` and recorded with the user's name. The logic lives in
`automl_tasks.pipelines.advice_actions`; this module only speaks HTTP and HTML. Plain
HTML with a little JavaScript: the pages need no build step and no extra package.
"""

from __future__ import annotations

import html
import os
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

app = FastAPI(title="loopml", description="loopml's advisor loop and search-space versions, inside Airflow")

#: the pipelines whose runs can be re-run from their advice (their conf has a search space)
RERUNNABLE_DAGS = ("nocode_pipeline",)


async def _user(request: Request) -> Any:
    """Airflow's user of the request (401/403 without a valid session cookie or token).
    Airflow's `get_user`, imported here so that processes that load plugins without serving
    them (scheduler, task runners) do not import Airflow's API layer."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip()) if token else None
    return await get_user(request, None, bearer)


User = Annotated[Any, Depends(_user)]


def authorize(user: Any, dag_id: str, method: str) -> None:
    """403 unless `user` may read (GET) or trigger (POST) runs of `dag_id`."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    allowed = get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )
    if not allowed:
        verb = "trigger" if method == "POST" else "read"
        raise HTTPException(HTTPStatus.FORBIDDEN, f"user {user.get_name()!r} may not {verb} runs of {dag_id}")


def current_workspace():
    from automl_tasks.core.settings import Workspace

    return Workspace.from_env()


def dag_run_conf(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            raise HTTPException(HTTPStatus.NOT_FOUND, f"{dag_id} has no run {run_id!r} (any more)")
        return dict(run.conf or {})


def pipeline_run_id(run_id: str) -> str:
    """The MLflow pipeline run of DAG run `run_id` (404 when the run opened none)."""
    from automl_tasks.core.tags import DAG_RUN_TAG, KIND_TAG
    from automl_tasks.core.tracking import mlflow_client

    client = mlflow_client(current_workspace())
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        experiments, filter_string=f"tags.`{DAG_RUN_TAG}` = '{run_id}' and tags.`{KIND_TAG}` = 'pipeline'"
    )
    if not found:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"DAG run {run_id!r} has no MLflow pipeline run (yet)")
    return found[0].info.run_id


def _user_error(exc: Exception) -> HTTPException:
    from automl_tasks.core.errors import SearchSpaceError

    if isinstance(exc, SearchSpaceError):
        return HTTPException(HTTPStatus.UNPROCESSABLE_ENTITY, {"path": exc.path, "message": str(exc)})
    missing = "does not exist" in str(exc) or "there is no suggestion" in str(exc)
    status = HTTPStatus.NOT_FOUND if missing else HTTPStatus.CONFLICT
    return HTTPException(status, str(exc))


def trigger_run(dag_id: str, conf: dict[str, Any], user: Any, note: str) -> str:
    """Trigger `dag_id` as an ordinary DAG run by `user` (shown as triggered from the UI); its run id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, ParamValidationError
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            dag_id, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user.get_name(), conf=conf, note=note
        )
    except (DagNotFound, ParamValidationError, ValueError) as exc:  # the form refused the conf, or no such DAG
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"Airflow refused the {dag_id} run: {exc}") from None
    if run is None:
        raise HTTPException(HTTPStatus.CONFLICT, f"{dag_id} could not be triggered")
    return run.run_id


def _trigger(dag_id: str, source_run: str, rerun: Any, user: Any) -> str:
    """Trigger the re-run of `source_run` that `rerun` describes."""
    note = f"re-run of {source_run}: {rerun.change} (search space {rerun.space.version})"
    return trigger_run(dag_id, rerun.conf, user, note)


def _rerunnable(dag_id: str) -> None:
    if dag_id not in RERUNNABLE_DAGS:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"runs of {dag_id} cannot be re-run from their advice; only {list(RERUNNABLE_DAGS)}"
        )


# ---------------------------------------------------------------------------- JSON API


@app.get("/api/advisor/{dag_id}/{run_id}")
def advice(dag_id: str, run_id: str, user: User) -> dict[str, Any]:
    """The run's suggestions, each with its status and whether it can be applied."""
    from automl_tasks.core.errors import UserError
    from automl_tasks.pipelines.advice_actions import run_space_version, suggestions

    authorize(user, dag_id, "GET")
    dag_run_conf(dag_id, run_id)
    pipeline = pipeline_run_id(run_id)
    try:
        ws = current_workspace()
        return {
            "pipeline_run": pipeline,
            "space_version": run_space_version(ws, pipeline),
            "suggestions": suggestions(ws, pipeline),
        }
    except UserError as exc:
        raise _user_error(exc) from None


@app.post("/api/advisor/{dag_id}/{run_id}/accept/{index}")
def accept(dag_id: str, run_id: str, index: int, user: User) -> dict[str, Any]:
    """Apply suggestion `index` to the run's search space as a new version and re-run on it."""
    from automl_tasks.core.errors import UserError
    from automl_tasks.pipelines.advice_actions import accept as accept_suggestion
    from automl_tasks.pipelines.advice_actions import mark_accepted

    authorize(user, dag_id, "POST")
    _rerunnable(dag_id)
    conf = dag_run_conf(dag_id, run_id)
    pipeline = pipeline_run_id(run_id)
    ws = current_workspace()
    try:
        rerun = accept_suggestion(ws, pipeline, index, conf=conf, user=user.get_name())
    except UserError as exc:
        raise _user_error(exc) from None
    rerun_id = _trigger(dag_id, run_id, rerun, user)
    mark_accepted(ws, pipeline, index, rerun, user=user.get_name(), rerun_id=rerun_id)
    return {**rerun.to_dict(), "dag_run_id": rerun_id}


@app.post("/api/advisor/{dag_id}/{run_id}/dismiss/{index}")
def dismiss(dag_id: str, run_id: str, index: int, user: User) -> dict[str, Any]:
    from automl_tasks.core.errors import UserError
    from automl_tasks.pipelines.advice_actions import dismiss as dismiss_suggestion

    authorize(user, dag_id, "POST")
    dag_run_conf(dag_id, run_id)
    pipeline = pipeline_run_id(run_id)
    try:
        dismiss_suggestion(current_workspace(), pipeline, index, user=user.get_name())
    except UserError as exc:
        raise _user_error(exc) from None
    return {"dismissed": index, "by": user.get_name()}


@app.post("/api/advisor/{dag_id}/{run_id}/space")
def edit(dag_id: str, run_id: str, user: User, space: Annotated[str, Body(embed=True)]) -> dict[str, Any]:
    """Re-run on a search space a person edited (validated first: a fault saves nothing)."""
    from automl_tasks.core.errors import UserError
    from automl_tasks.pipelines.advice_actions import edit_space

    authorize(user, dag_id, "POST")
    _rerunnable(dag_id)
    conf = dag_run_conf(dag_id, run_id)
    pipeline = pipeline_run_id(run_id)
    try:
        rerun = edit_space(current_workspace(), pipeline, space, conf=conf, user=user.get_name())
    except UserError as exc:
        raise _user_error(exc) from None
    return {**rerun.to_dict(), "dag_run_id": _trigger(dag_id, run_id, rerun, user)}


@app.post("/api/spaces/validate")
def validate(user: User, space: Annotated[str, Body(embed=True)]) -> dict[str, Any]:
    """Whether a search-space document is valid; the YAML path and the problem if not."""
    from automl_tasks.core.errors import SearchSpaceError
    from automl_tasks.search_space import load_search_space

    try:
        parsed = load_search_space(space)
    except SearchSpaceError as exc:
        return {"valid": False, "path": exc.path, "message": str(exc)}
    return {"valid": True, "version": parsed.hash, "parameters": len(parsed.names())}


@app.get("/api/spaces/{family}")
def space_versions(family: str, user: User) -> dict[str, Any]:
    """Every search-space version of `family` with the runs that searched it and their scores."""
    from automl_tasks.families.aliases import check_family_name
    from automl_tasks.search_space.versions import family_versions

    try:
        check_family_name(family)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    return {"family": family, "versions": family_versions(current_workspace(), family)}


@app.get("/go/mlflow")
def go_mlflow(user: User) -> Any:
    """The MLflow UI of the running stack (read now, not when the plugin was imported)."""
    from loopml.embedded import read_state

    port = (read_state(current_workspace()) or {}).get("mlflow_port")
    url = f"http://127.0.0.1:{port}" if port else os.environ.get("LOOPML_MLFLOW_UI_URL")
    if url:
        return RedirectResponse(url)
    return HTMLResponse(
        html_page(
            "MLflow UI",
            "<p>This stack runs no MLflow UI. Start the stack with <code>loopml up</code> (it serves the "
            "MLflow UI beside Airflow), or run <code>mlflow ui --backend-store-uri "
            f"{html.escape(current_workspace().mlflow_uri)}</code>.</p>",
        ),
        status_code=HTTPStatus.NOT_FOUND,
    )


@app.get("/go/mlflow/run/{experiment_id}/{run_id}")
def go_mlflow_run(experiment_id: str, run_id: str, user: User) -> Any:
    """An MLflow run (e.g. a drift check with its report) in the running stack's MLflow UI."""
    answer = go_mlflow(user)
    if isinstance(answer, RedirectResponse):
        base = answer.headers["location"].rstrip("/")
        return RedirectResponse(f"{base}/#/experiments/{experiment_id}/runs/{run_id}")
    return answer


@app.get("/go/mlflow/dagrun/{dag_id}/{run_id}")
def go_mlflow_dag_run(dag_id: str, run_id: str, user: User) -> Any:
    """The MLflow run of a pipeline's DAG run (the target of the "MLflow run" task link)."""
    from automl_tasks.core.tracking import mlflow_client

    authorize(user, dag_id, "GET")
    pipeline = pipeline_run_id(run_id)
    experiment = mlflow_client(current_workspace()).get_run(pipeline).info.experiment_id
    return go_mlflow_run(experiment, pipeline, user)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


# ---------------------------------------------------------------------------- pages


def html_page(title: str, body: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 70rem; color: #1f2933; }}
table {{ border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }}
td, th {{ border-bottom: 1px solid #d9e2ec; padding: .4rem .5rem; text-align: left; vertical-align: top; }}
.status {{ color: #52606d; font-size: .9em; }} .error {{ color: #b42318; white-space: pre-wrap; }}
.ok {{ color: #067647; }} textarea {{ width: 100%; height: 22rem; font-family: monospace; }}
button {{ margin-right: .3rem; }} pre {{ background: #f5f7fa; padding: .5rem; overflow: auto; }}
</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"""


_ADVISOR_SCRIPT = """
<script>
const base = document.body.dataset.api;
async function call(path, body) {
  const response = await fetch(base + path, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                             credentials: 'same-origin', body: JSON.stringify(body || {})});
  const answer = await response.json();
  if (!response.ok) { throw new Error(typeof answer.detail === 'string' ? answer.detail : answer.detail.message); }
  return answer;
}
function show(id, text, ok) { const el = document.getElementById(id); el.textContent = text; el.className = ok ? 'ok' : 'error'; }
async function act(kind, index) {
  try {
    const answer = await call('/' + kind + '/' + index);
    show('result', kind === 'accept' ? 'search space ' + answer.space.version + ': ' + answer.change +
         '; re-run ' + answer.dag_run_id + ' triggered' : 'dismissed', true);
    document.getElementById('status-' + index).textContent = kind === 'accept' ? 'accepted' : 'dismissed';
  } catch (err) { show('result', err.message, false); }
}
let timer = null;
function validateSoon() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const response = await fetch(document.body.dataset.validate, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({space: editor.value})});
    const answer = await response.json();
    show('validation', answer.valid ? 'valid: version ' + answer.version + ', ' + answer.parameters + ' parameters'
                                    : answer.message, answer.valid);
  }, 300);
}
async function rerunEdited() {
  try {
    const answer = await call('/space', {space: editor.value});
    show('result', 'search space ' + answer.space.version + ' (' + answer.change + '); re-run ' + answer.dag_run_id + ' triggered', true);
  } catch (err) { show('result', err.message, false); }
}
const editor = document.getElementById('editor');
editor.addEventListener('input', validateSoon);
</script>"""


@app.get("/advisor/{dag_id}/{run_id}", response_class=HTMLResponse)
def advisor_page(dag_id: str, run_id: str, request: Request, user: User) -> str:
    """The run's suggestions with Accept / Dismiss, and the space editor."""
    from automl_tasks.pipelines.advice_actions import requested_space

    found = advice(dag_id, run_id, user)
    conf = dag_run_conf(dag_id, run_id)
    rows = []
    for item in found["suggestions"]:
        i = item["index"]
        buttons = "" if item["status"] else f"<button onclick=\"act('dismiss', {i})\">Dismiss</button>"
        if item["actionable"] and not item["status"] and dag_id in RERUNNABLE_DAGS:
            buttons = f"<button onclick=\"act('accept', {i})\">Accept and re-run</button>" + buttons
        rows.append(
            f"<tr><td>{html.escape(item['kind'])}</td><td>{html.escape(str(item.get('param', '')))}</td>"
            f"<td>{html.escape(item['text'])}</td><td id='status-{i}' class='status'>"
            f"{html.escape(item['status'] or 'open')}</td><td>{buttons}</td></tr>"
        )
    table = (
        "<table><tr><th>kind</th><th>about</th><th>evidence and suggestion</th><th>status</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else "<p>No suggestions for this run (the advisor has not run yet, or found nothing to say).</p>"
    )
    root = request.scope.get("root_path", "")
    family = conf.get("family") or ""
    versions_link = f'<a href="{root}/spaces/{html.escape(family)}">its versions</a>' if family else ""
    body = f"""
<p>{html.escape(dag_id)} run <code>{html.escape(run_id)}</code>; MLflow run <code>{found["pipeline_run"]}</code>;
searched space version <code>{html.escape(found["space_version"] or "?")}</code> {versions_link}.
<a href="{root}/study/{html.escape(dag_id)}/{html.escape(run_id)}">Study</a> ·
<a href="{root}/go/mlflow">MLflow UI</a></p>
<h2>Suggestions</h2>{table}<p id="result"></p>
<h2>Search space</h2>
<p>Edit the space this run searched; it is checked as you type. "Re-run" stores it as a new version
(parent: this run's space) and re-runs {html.escape(dag_id)} on the same dataset version, warm-started
from this run's study.</p>
<textarea id="editor" spellcheck="false">{html.escape(requested_space(conf))}</textarea>
<p id="validation" class="status"></p><button onclick="rerunEdited()">Re-run with this space</button>"""
    page = html_page(f"Advisor: {run_id}", body + _ADVISOR_SCRIPT)
    api = f"{root}/api/advisor/{dag_id}/{run_id}"
    return page.replace("<body>", f'<body data-api="{html.escape(api)}" data-validate="{root}/api/spaces/validate">', 1)


@app.get("/spaces/{family}", response_class=HTMLResponse)
def spaces_page(family: str, user: User) -> str:
    """Every version of the family's search space: parent, change, author, runs and scores."""
    from automl_tasks.search_space.versions import DIFF_FILE, version_text

    ws = current_workspace()
    versions = space_versions(family, user)["versions"]
    if not versions:
        return html_page(f"Search spaces of {family}", "<p>No search-space version recorded for this family yet.</p>")
    parts = []
    for v in versions:
        runs = "".join(
            f"<li>{html.escape(r['study'] or r['run_id'])} ({r['status'].lower()}): "
            f"search score {_score(r.get('search_score'))}, test score {_score(r.get('test_score'))}"
            f"{', model v' + str(r['model_version']) if r.get('model_version') else ''}</li>"
            for r in v["runs"]
        )
        diff = version_text(ws, v["run_id"], DIFF_FILE)
        parts.append(
            f"<h2>{html.escape(v['version'])}</h2><p class='status'>parent {html.escape(v['parent'] or '(root)')}; "
            f"{html.escape(v['change'])}{'; by ' + html.escape(v['accepted_by']) if v['accepted_by'] else ''}</p>"
            f"<ul>{runs or '<li>no run searched it yet</li>'}</ul>"
            + (f"<pre>{html.escape(diff)}</pre>" if diff else "")
        )
    return html_page(f"Search spaces of {family}", "".join(parts))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
