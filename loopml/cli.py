"""`loopml`: run the embedded AutoML stack from a terminal.

demo       run the NoCode pipeline on a bundled dataset, serve the champion, query it
up         start Airflow (and the MLflow UI) on the workspace and keep them running:
           components that exit or hang are restarted, Ctrl-C stops every process
status     each component's pid, uptime, restarts and health; URLs; next drift checks
run        trigger a DAG with a JSON conf, follow it to the end, print the outcome
serve      serve a model family's champion with BentoML on localhost
bento      build a Bento (deployable archive) that serves a model family
algorithms register an algorithm (smoke test of its capabilities) or list them
demo-drift close the drift loop on the demo family: shifted traffic -> drift_check ->
           drift_retrain -> promotion -> the endpoint answers with the new version
demo-adaptation
           adapt the packaged MiniLM to real reviews (PEFT search, distillation, pruning,
           int8), choose the champion on accuracy x latency, serve it, query it
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from automl_tasks.core.settings import Workspace
from loopml.dag_runs import run_dag, say


def cmd_run(args: argparse.Namespace) -> int:
    ws = Workspace.from_env().ensure()
    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        say(f"--conf is not valid JSON: {exc}")
        return 2
    state, outcome = run_dag(ws, args.dag_id, conf, port=args.port, timeout_s=args.timeout)
    if outcome is not None:
        say(json.dumps(outcome, indent=2))
    return 0 if state == "success" else 1


def _sample_instance(ws: Workspace, family: str) -> dict[str, Any]:
    """The first row of the champion's training dataset version, as the endpoint expects it."""
    from serving.loader import sample_instances

    return sample_instances(ws, family, 1)[0]


def _query(url: str, instance: dict[str, Any]) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{url}/predict", json={"instances": [instance]}, timeout=30, trust_env=False)
    if response.status_code != 200:
        raise RuntimeError(f"{url}/predict answered {response.status_code}: {response.text[:500]}")
    return response.json()


def cmd_demo(args: argparse.Namespace) -> int:
    ws = Workspace.from_env().ensure()
    conf = {
        "dataset": args.dataset,
        "n_trials": args.trials,
        "n_workers": args.workers,
        "time_budget_s": args.time_budget,
    }
    say(f"loopml demo: NoCode pipeline on the bundled '{args.dataset}' table")
    state, outcome = run_dag(ws, "nocode_pipeline", conf, port=args.port, timeout_s=args.timeout)
    if state != "success" or outcome is None:
        say("the pipeline did not succeed; see the task logs above")
        return 1
    family = outcome["family"]
    say(
        f"registered {family} v{outcome['version']} as {outcome['alias']} "
        f"({outcome['metric']}={outcome['test_score']:.4f} on the held-out test split)"
    )
    from loopml.serve import start_server

    log_path = ws.home / "bentoml-demo.log"
    with log_path.open("ab") as log_file:
        server = start_server(ws, family, args.serve_port, log_file=log_file)
        try:
            server.wait_ready()
            instance = _sample_instance(ws, family)
            answer = _query(server.url, instance)
            say(f"BentoML endpoint {server.url}/predict answered: {json.dumps(answer)[:300]}")
        finally:
            server.stop()
    request_file = ws.home / "demo-request.json"
    request_file.write_text(json.dumps({"instances": [instance]}))
    bin_dir = Path(sys.executable).parent
    say(
        "\nwhere to look next:\n"
        f"  Airflow + MLflow UIs: LOOPML_HOME={ws.home} {bin_dir / 'loopml'} up\n"
        f"                        (Airflow http://127.0.0.1:{args.port}, MLflow http://127.0.0.1:5000)\n"
        f"  serve the champion:   LOOPML_HOME={ws.home} {bin_dir / 'loopml'} serve {family} --port {args.serve_port}\n"
        f"  call it:              curl -s -X POST http://127.0.0.1:{args.serve_port}/predict "
        f"-H 'Content-Type: application/json' -d @{request_file}"
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start the supervised stack and keep it running until Ctrl-C/SIGTERM (or it gives up)."""
    from loopml.embedded import AirflowStack, ensure_stack, free_port

    ws = Workspace.from_env().ensure()
    existing = AirflowStack.running(ws)
    if existing:
        say(f"a stack already runs on {ws.home} (Airflow {existing.url}); see `loopml status`")
        return 1
    server = ws.mlflow_uri.startswith(("http://", "https://"))  # the distributed mode's MLflow server
    mlflow_port = None if server else free_port(args.mlflow_port)
    mlflow_url = ws.mlflow_uri if server else f"http://127.0.0.1:{mlflow_port}"
    os.environ["LOOPML_MLFLOW_UI_URL"] = mlflow_url  # the Airflow nav link
    stack = ensure_stack(ws, args.port, mlflow_port=mlflow_port, say=say)
    login = (
        "log in as a user of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
        if server
        else "single-user local stack: no login"
    )
    try:
        say(f"Airflow UI:  {stack.url}  ({login})")
        say(f"MLflow UI:   {mlflow_url}")
        say(f"workspace:   {ws.home}")
        say(f"stack log:   {stack.logs / 'stack.log'} (`loopml status` shows each component)\nCtrl-C stops all.")
        while not stack.supervisor.done.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    failure = stack.failure()
    if failure:
        say(failure)
        return 1
    say("stack stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from loopml.embedded import read_state
    from loopml.status import render_status

    ws = Workspace.from_env()
    text, code = render_status(ws, read_state(ws))
    say(text)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    from loopml.serve import start_server

    ws = Workspace.from_env().ensure()
    extra = {"LOOPML_CANARY_SHARE": str(args.canary_share)}
    if args.api_key:
        extra["LOOPML_API_KEY"] = args.api_key
    server = start_server(ws, args.family, args.port, extra_env=extra)
    try:
        server.wait_ready()
        canary = f", {args.canary_share:.0%} of requests to challenger" if args.canary_share else ""
        say(
            f"serving {args.family}@champion{canary} at {server.url}/predict (OpenAPI: {server.url}/docs); Ctrl-C stops"
        )
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_bento(args: argparse.Namespace) -> int:
    """Build a Bento for one family: serving/bentofile.yaml plus the family in its envs and labels."""
    import tempfile

    import yaml

    from loopml.embedded import REPO_ROOT

    ws = Workspace.from_env().ensure()
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.promotion import check_family_exists
    from serving.image import PACKAGES_ENV, family_packages

    client = mlflow_client(ws)
    check_family_exists(client, args.family)
    packages = family_packages(client.search_model_versions(f"name = '{args.family}'"))
    spec = yaml.safe_load((REPO_ROOT / "serving" / "bentofile.yaml").read_text())
    spec["labels"] = {**spec.get("labels", {}), "family": args.family}
    spec["envs"] = [{"name": "LOOPML_FAMILY", "value": args.family}]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(spec, handle)
    # the service module sizes its image from this (serving/image.py): no Airflow, TVM or torch
    # unless one of the family's versions needs them
    env = dict(os.environ, **ws.env(), BENTOML_DO_NOT_TRACK="True", **{PACKAGES_ENV: ",".join(packages)})
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", handle.name, "--output", "tag", str(REPO_ROOT)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    os.unlink(handle.name)
    if out.returncode != 0:
        say(f"bentoml build failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return 1
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    extra = f" (with {', '.join(packages)})" if packages else ""
    say(f"built Bento {tag} for family {args.family} in {ws.bentoml_home}; its image: serving packages{extra}")
    return 0


def cmd_demo_drift(args: argparse.Namespace) -> int:
    from loopml.demo_drift import run_drift_demo

    ws = Workspace.from_env().ensure()
    return run_drift_demo(
        ws,
        args.family,
        port=args.port,
        serve_port=args.serve_port,
        rows=args.rows,
        trials=args.trials,
        timeout_s=args.timeout,
    )


def cmd_demo_adaptation(args: argparse.Namespace) -> int:
    from loopml.demo_adaptation import run_adaptation_demo

    ws = Workspace.from_env().ensure()
    return run_adaptation_demo(
        ws,
        rows=args.rows,
        trials=args.trials,
        time_budget_s=args.time_budget,
        port=args.port,
        serve_port=args.serve_port,
        timeout_s=args.timeout,
    )


def cmd_algorithms(args: argparse.Namespace) -> int:
    """Register (smoke-test) an algorithm, or list the registered ones with their capabilities."""
    from automl_tasks.algorithms import builtin_specs, register, registered
    from automl_tasks.core.errors import LoopmlError

    ws = Workspace.from_env().ensure()
    if args.action == "list":
        reports = registered(ws)
        for name, spec in sorted(builtin_specs().items()):
            if name not in reports:
                say(f"{name} {spec.version}: built in, not registered in this workspace yet")
        for report in reports.values():
            say(report.summary())
        return 0
    if not args.algorithm:
        say("give the algorithm's name or folder: loopml algorithms register NAME|PATH")
        return 2
    try:
        report = register(ws, args.algorithm)
    except LoopmlError as exc:
        say(str(exc))
        return 2
    say(json.dumps(report.to_dict(), indent=2))
    return 0 if report.has("searchable") else 1


#: where KubernetesPodOperator's XCom sidecar reads a pod's result
POD_XCOM_FILE = Path("/airflow/xcom/return.json")


def cmd_worker(args: argparse.Namespace) -> int:
    """One search worker of a study (a trial pod's command): evaluate trials until the budget
    is spent; print its summary (and, with --xcom, leave it for the pod's XCom sidecar)."""
    from dataclasses import asdict

    from automl_tasks.core.errors import UserError
    from automl_tasks.search import run_worker

    ws = Workspace.from_env().ensure()
    try:
        summary = asdict(run_worker(ws, args.study, args.index))
    except KeyError:  # optuna: "Record does not exist"
        raise UserError(f"no study named {args.study!r} in the Optuna storage {ws.optuna_uri}") from None
    say(json.dumps(summary))
    if args.xcom:
        POD_XCOM_FILE.parent.mkdir(parents=True, exist_ok=True)
        POD_XCOM_FILE.write_text(json.dumps(summary))
    return 0


def cmd_celery_worker(args: argparse.Namespace) -> int:
    """A worker host of the Celery profile: `airflow celery worker` with this machine's own
    workspace (LOOPML_HOME) and the profile's stores and broker, running tasks for the
    api-server at LOOPML_AIRFLOW_URL. Checks the settings and every server first."""
    from automl_tasks.core.errors import ConfigurationError
    from automl_tasks.core.profile import DeploymentProfile
    from loopml.embedded import worker_host_env
    from loopml.preflight import unreachable

    profile = DeploymentProfile.from_env().check()
    if profile.executor != "celery":
        raise ConfigurationError(f"a Celery worker needs LOOPML_EXECUTOR=celery; got {profile.executor!r}")
    api_url = os.environ.get("LOOPML_AIRFLOW_URL", "")
    if not api_url:
        raise ConfigurationError("set LOOPML_AIRFLOW_URL to the api-server this worker runs tasks for")
    problems = unreachable(profile)
    if problems:
        raise ConfigurationError("cannot start the worker: " + "; ".join(problems))
    env = worker_host_env(profile.workspace.ensure(), api_url)
    command = [sys.executable, "-m", "airflow", "celery", "worker", "--concurrency", str(args.concurrency)]
    say(f"Celery worker for {api_url}, workspace {profile.workspace.home}")
    options = args.options[1:] if args.options[:1] == ["--"] else args.options
    os.execve(sys.executable, [*command, *options], env)  # the worker replaces this process
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopml", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="NoCode pipeline on a bundled dataset, then serve and query the model")
    demo.add_argument("--dataset", default="breast_cancer")
    demo.add_argument("--trials", type=int, default=12)
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--time-budget", type=int, default=600)
    demo.add_argument("--port", type=int, default=8080, help="Airflow api-server port")
    demo.add_argument("--serve-port", type=int, default=3000)
    demo.add_argument("--timeout", type=float, default=1800)
    demo.set_defaults(func=cmd_demo)

    up = sub.add_parser("up", help="start Airflow and the MLflow UI on the workspace")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--mlflow-port", type=int, default=5000)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="the stack's components, URLs and the next drift checks")
    status.set_defaults(func=cmd_status)

    run = sub.add_parser("run", help="trigger a DAG and wait for it")
    run.add_argument("dag_id")
    run.add_argument("--conf", default="{}", help="JSON object with the DAG's params")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--timeout", type=float, default=3600)
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve a family's champion with BentoML")
    serve.add_argument("family")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--canary-share", type=float, default=0.0, help="share of requests answered by challenger")
    serve.add_argument("--api-key", default="", help="require this key in X-API-Key (default: no auth)")
    serve.set_defaults(func=cmd_serve)

    bento = sub.add_parser("bento", help="build a Bento that serves a family")
    bento.add_argument("family")
    bento.set_defaults(func=cmd_bento)

    celery = sub.add_parser("celery-worker", help="run a Celery worker host of the distributed mode")
    celery.add_argument("--concurrency", type=int, default=2, help="task slots of this host")
    celery.add_argument("options", nargs=argparse.REMAINDER, help="-- then more `airflow celery worker` options")
    celery.set_defaults(func=cmd_celery_worker)

    worker = sub.add_parser("worker", help="run one search worker of a study (what a trial pod runs)")
    worker.add_argument("--study", required=True)
    worker.add_argument("--index", type=int, default=0, help="the worker's slot (seeds its sampler)")
    worker.add_argument("--xcom", action="store_true", help=f"also write the summary to {POD_XCOM_FILE}")
    worker.set_defaults(func=cmd_worker)

    algorithms = sub.add_parser("algorithms", help="register an algorithm (runs its smoke test) or list them")
    algorithms.add_argument("action", choices=["register", "list"])
    algorithms.add_argument("algorithm", nargs="?", default="", help="built-in name or folder with algorithm.yaml")
    algorithms.set_defaults(func=cmd_algorithms)

    drift = sub.add_parser("demo-drift", help="shifted traffic -> drift check -> retrain -> promoted model served")
    drift.add_argument("--family", default="breast_cancer", help="family to drift (made by 'loopml demo' if missing)")
    drift.add_argument("--rows", type=int, default=400, help="shifted rows sent to the endpoint")
    drift.add_argument("--trials", type=int, default=6, help="trial budget of the retrain search")
    drift.add_argument("--port", type=int, default=8080, help="Airflow api-server port")
    drift.add_argument("--serve-port", type=int, default=3000)
    drift.add_argument("--timeout", type=float, default=1800)
    drift.set_defaults(func=cmd_demo_drift)

    adaptation = sub.add_parser(
        "demo-adaptation", help="large-model adaptation on real reviews, then serve and query the text model"
    )
    adaptation.add_argument("--rows", type=int, default=600, help="reviews sampled from the bundled fine_foods table")
    adaptation.add_argument("--trials", type=int, default=4)
    adaptation.add_argument("--time-budget", type=int, default=300)
    adaptation.add_argument("--port", type=int, default=8080, help="Airflow api-server port")
    adaptation.add_argument("--serve-port", type=int, default=3000)
    adaptation.add_argument("--timeout", type=float, default=3600)
    adaptation.set_defaults(func=cmd_demo_adaptation)
    return parser


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _fail(command: str, message: str, log: Path | None = None) -> int:
    say(f"loopml {command}: {message}")
    if log and log.exists():
        say(f"  details: {log}")
    return 1


def main(argv: list[str] | None = None) -> int:
    from automl_tasks.core.errors import LoopmlError
    from loopml.airflow_client import AirflowApiError
    from loopml.embedded import StackError

    args = build_parser().parse_args(argv)
    # SIGTERM (e.g. from a process manager) must run the same clean-up as Ctrl-C,
    # so the Airflow and BentoML processes this command started stop with it.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    logs = Workspace.from_env().airflow_home / "logs"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `loopml status | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except StackError as exc:  # its message names the log file
        return _fail(args.command, str(exc))
    except AirflowApiError as exc:
        server_side = exc.status is None or exc.status >= 500
        return _fail(args.command, str(exc), logs / "api-server.log" if server_side else None)
    except (LoopmlError, TimeoutError) as exc:
        return _fail(args.command, str(exc))
    except Exception as exc:  # a bug: one line here, the traceback in a file
        import traceback

        log = Workspace.from_env().home / "loopml-cli-errors.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as out:
                out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} loopml {' '.join(argv or sys.argv[1:])}\n")
                out.write(traceback.format_exc())
        except OSError:
            log = None
        return _fail(args.command, f"unexpected error: {type(exc).__name__}: {exc}", log)


if __name__ == "__main__":
    sys.exit(main())
