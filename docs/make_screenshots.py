"""Screenshots of loopml's pages inside Airflow, for docs/screenshots/ (a reader sees them
without running anything).

Starts the embedded stack on a temporary workspace, runs a small NoCode search on the
bundled breast_cancer table, opens the run's Advisor page in headless Chromium, re-runs it
on an edited space (dropping the MLP model), captures the Advisor, search-space versions and
Study pages, then promotes the first version from the Families page and approves it there.
About three minutes on 2 cores.

    PYTHONPATH=. .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.core.settings import Workspace  # noqa: E402
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE  # noqa: E402
from automl_tasks.search_space.edits import apply_edit  # noqa: E402
from loopml.airflow_client import AirflowClient  # noqa: E402
from loopml.embedded import ensure_stack  # noqa: E402
from tests.browser import browser_page  # noqa: E402

OUT = REPO / "docs" / "screenshots"
CONF = {"dataset": "breast_cancer", "n_trials": 8, "n_workers": 2, "time_budget_s": 120}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.at(Path(home) / "ws").ensure()
        stack = ensure_stack(ws, port=18190)
        try:
            client = AirflowClient(stack.url)
            client.wait_for_dag("nocode_pipeline")
            run_id = client.trigger("nocode_pipeline", CONF)
            print(f"nocode_pipeline {run_id}: {client.wait_for_run('nocode_pipeline', run_id, timeout_s=900)}")
            edited, _ = apply_edit(DEFAULT_TABULAR_SPACE.read_text(), "drop_choice", "model", "mlp")
            with browser_page() as page:
                page.goto(f"{stack.url}/loopml/advisor/nocode_pipeline/{run_id}")
                page.fill("#editor", edited.replace("range: [0.01, 0.3]", "range: [0.3, 0.01]"))
                page.wait_for_function("document.getElementById('validation').textContent.includes('low < high')")
                page.screenshot(path=str(OUT / "advisor-editor-error.png"), full_page=True)
                page.fill("#editor", edited)
                page.wait_for_function("document.getElementById('validation').textContent.startsWith('valid')")
                page.click("text=Re-run with this space")
                page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
                page.screenshot(path=str(OUT / "advisor.png"), full_page=True)
                rerun = re.search(r"re-run (\S+) triggered", page.inner_text("#result")).group(1)
                print(f"re-run {rerun}: {client.wait_for_run('nocode_pipeline', rerun, timeout_s=900)}")
                page.goto(f"{stack.url}/loopml/spaces/breast_cancer")
                page.screenshot(path=str(OUT / "search-space-versions.png"), full_page=True)
                page.goto(f"{stack.url}/loopml/study/nocode_pipeline/{run_id}")
                page.screenshot(path=str(OUT / "study.png"), full_page=False)
                page.goto(f"{stack.url}/loopml/families/breast_cancer")
                page.locator("tr", has_text="v1").locator("text=Promote (needs approval)").first.click()
                page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
                promotion = re.search(r"promote_model run (\S+) triggered", page.inner_text("#result")).group(1)
                approve = page.locator("tr", has_text=promotion).locator("button", has_text="Approve")
                while not approve.count():  # listed once Airflow has parked the approval task
                    page.wait_for_timeout(1000)
                    page.reload()
                page.screenshot(path=str(OUT / "family-approval.png"), full_page=True)
                approve.click()
                page.wait_for_function("document.getElementById('result').textContent.startsWith('Approve')")
                print(f"promotion {promotion}: {client.wait_for_run('promote_model', promotion, timeout_s=300)}")
                page.reload()
                page.screenshot(path=str(OUT / "family.png"), full_page=True)
        finally:
            stack.stop()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
