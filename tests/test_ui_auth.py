"""loopml's pages in Airflow answer only to Airflow's auth: no session -> 401, a user without
the DAG permission -> 403, an admin gets through to the action.

Airflow's real api-server app (`create_app`), with the simple auth manager and named users
(not the embedded stack's single-user mode), on a migrated SQLite metadata DB, is driven
through FastAPI's TestClient in a subprocess: Airflow reads its configuration at import, so
it gets a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, os
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app(apps="all"))
passwords = json.load(open(os.path.join(os.environ["AIRFLOW_HOME"], "simple_auth_manager_passwords.json.generated")))

def bearer(user):
    token = client.post("/auth/token", json={"username": user, "password": passwords[user]}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}

promote = {"action": "manual", "version": "1"}
viewer, admin = bearer("viewer"), bearer("admin")
answers = {
    "anonymous_page": client.get("/loopml/families"),
    "anonymous_promote": client.post("/loopml/api/families/fam/promote", json=promote),
    "forged_token": client.get("/loopml/api/families", headers={"Authorization": "Bearer not-a-token"}),
    "viewer_reads": client.get("/loopml/api/families", headers=viewer),
    "viewer_promote": client.post("/loopml/api/families/fam/promote", json=promote, headers=viewer),
    "viewer_rerun": client.post("/loopml/api/advisor/nocode_pipeline/r1/space", json={"space": "x"}, headers=viewer),
    "admin_promote": client.post("/loopml/api/families/fam/promote", json=promote, headers=admin),
}
print(json.dumps({name: [r.status_code, r.json()] for name, r in answers.items()}))
"""


def test_pages_answer_only_to_airflow_auth(tmp_path):
    home = tmp_path / "airflow"
    home.mkdir()
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="viewer:viewer,admin:admin",
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__API_AUTH__JWT_SECRET="loopml-test-secret-0123456789abcdef",
        LOOPML_HOME=str(tmp_path / "ws"),
        PYTHONPATH=str(REPO),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["anonymous_page"][0] == 401
    assert answers["anonymous_promote"][0] == 401
    assert answers["forged_token"][0] in (401, 403)
    assert answers["viewer_reads"] == [200, {"families": []}]
    assert answers["viewer_promote"] == [403, {"detail": "user 'viewer' may not trigger runs of promote_model"}]
    assert answers["viewer_rerun"][0] == 403
    status, body = answers["admin_promote"]
    assert status == 400 and "Airflow refused the promote_model run" in body["detail"], answers["admin_promote"]
