"""The drift check and the retrain steps in-process, on a real MLflow store and DVC store."""

from __future__ import annotations

import time

import pytest

from automl_tasks.core.errors import ConfigurationError, DataValidationError
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import DatasetStore, bundled_frame
from automl_tasks.families.aliases import CHAMPION, current_alias_version
from automl_tasks.monitoring import InferenceLog, InferenceRecord
from automl_tasks.monitoring.drift_check import check_drift
from automl_tasks.pipelines.registration import train_and_register
from automl_tasks.pipelines.retrain import (
    RetrainRequest,
    gate_on_recent_data,
    plan_retrain_search,
    prepare_retrain_data,
)
from automl_tasks.search import run_worker, watch_search
from loopml.drift_stream import like_reference, shifted
from tests.drift_helpers import log_requests
from tests.family_builder import LIGHTGBM_SPACE, add_version
from tests.store_snapshot import assert_nothing_written, store_snapshot

FAMILY = "drifty"


@pytest.fixture
def family(workspace):
    add_version(workspace, FAMILY, n_trials=2, space=LIGHTGBM_SPACE, tag="v1")
    return workspace


def test_no_drift_then_drift_then_retrain_promotes(family, tmp_path):
    ws, reference = family, bundled_frame("breast_cancer")
    log_requests(ws, FAMILY, like_reference(reference, 300, seed=1), labels=True)
    calm = check_drift(ws, FAMILY, dag_run_id="t1")
    assert calm.status == "no_drift", calm.reasons
    assert calm.window_uri == "" and calm.performance is not None and calm.performance["drop"] < 0.05
    tags = mlflow_client(ws).get_run(calm.mlflow_run_id).data.tags
    assert tags["loopml.kind"] == "drift_check" and tags["loopml.drift.status"] == "no_drift"

    log_requests(ws, FAMILY, shifted(reference, "target", 400, seed=2), labels=True)
    drifted = check_drift(ws, FAMILY, dag_run_id="t2")
    assert drifted.status == "drift"
    assert any(r.startswith("data drift") for r in drifted.reasons)
    assert any(r.startswith("concept drift") for r in drifted.reasons)
    assert drifted.window_uri.startswith(f"dataset://{FAMILY}.window@")
    artifacts = {f.path for f in mlflow_client(ws).list_artifacts(drifted.mlflow_run_id, "drift")}
    assert artifacts == {"drift/drift_report.html", "drift/drift_summary.json"}

    # LightGBM size varies a lot between configurations; the size guard is not what this test is about
    request = RetrainRequest(
        family=FAMILY, window_uri=drifted.window_uri, n_trials=2, n_workers=1, max_size_ratio=50, max_latency_ratio=50
    )
    pre = prepare_retrain_data(ws, request, dag_run_id="r1")
    assert pre.parent_version == "1" and pre.dataset_uri.startswith("dataset://breast_cancer@")
    # the retrain reuses the champion's feature pipeline version as it is (issue #15)
    champion_features = mlflow_client(ws).get_model_version(FAMILY, "1").tags["loopml.feature_pipeline"]
    assert pre.feature_pipeline == champion_features
    study = f"{FAMILY}-r1"
    summary = plan_retrain_search(ws, request, pre, study)
    assert summary["warm_start"] >= 1
    run_worker(ws, study, 0)
    watch_search(ws, study, poll_s=0.2)
    registered = train_and_register(
        ws, study, dag_run_id="r1", dataset_version=pre.dataset_version, parent_version="1", auto_promote=False
    )
    assert registered.alias == "challenger"
    new_tags = mlflow_client(ws).get_model_version(FAMILY, registered.version).tags
    assert new_tags["loopml.feature_pipeline"] == champion_features
    decision = gate_on_recent_data(ws, FAMILY, registered.version, pre.eval_uri, gate=request.gate(), triggered_by="t")
    assert decision["promoted"], decision
    client = mlflow_client(ws)
    assert current_alias_version(client, FAMILY, CHAMPION) == registered.version
    assert client.get_model_version(FAMILY, registered.version).tags["loopml.parent_version"] == "1"


def test_schema_break_is_refused_before_anything_is_stored(family, tmp_path):
    ws = family
    broken = shifted(bundled_frame("breast_cancer"), "target", 100).drop(columns=["mean_radius"])
    broken["mean_texture"] = "high"
    path = tmp_path / "new.csv"
    broken.to_csv(path, index=False)
    before = store_snapshot(ws)
    with pytest.raises(DataValidationError) as caught:
        prepare_retrain_data(ws, RetrainRequest(family=FAMILY, data_path=str(path)), dag_run_id="bad")
    message = str(caught.value)
    assert str(path) in message and "'mean_radius'" in message and "'mean_texture'" in message
    with pytest.raises(DataValidationError, match="'mean_radius'"):
        check_drift(ws, FAMILY, dag_run_id="t3", data_path=str(path))
    # no MLflow experiment, run, model or version, no DVC file (no FAMILY.window, no FAMILY.eval),
    # no profile, drift report or other run scratch file
    assert_nothing_written(before, store_snapshot(ws))
    assert not DatasetStore(ws.datasets, ws.dvc_remote).versions(f"{FAMILY}.window")


def _log_with_predictions(ws, rows, predictions, *, age_s: float = 0.0) -> None:
    """Log `rows` as requests served `age_s` ago whose answers were `predictions`."""
    log = InferenceLog.for_family(ws.home, FAMILY)
    now = time.time() - age_s
    instances = rows.drop(columns=["target"]).to_dict(orient="records")
    log.append(
        InferenceRecord(f"r{i}", "1", "champion", row, int(out), now)
        for i, (row, out) in enumerate(zip(instances, predictions, strict=True))
    )


def test_prediction_shift_is_drift_and_a_short_window_gives_no_verdict(family):
    ws, reference = family, bundled_frame("breast_cancer")
    store = DatasetStore(ws.datasets, ws.dvc_remote)

    # 20 rows, shifted far: under min_rows (100 by default) there is no verdict and nothing stored
    _log_with_predictions(ws, shifted(reference, "target", 20, seed=5), [0] * 20, age_s=7200)
    short = check_drift(ws, FAMILY, dag_run_id="short", overrides={"window_hours": 3})
    assert short.status == "insufficient_data" and short.current_rows == 20
    assert "min_rows" in short.reasons[0] and short.prediction_drift is None and short.window_uri == ""
    assert not store.versions(f"{FAMILY}.window")

    # inputs like the training data, but the served answers all say class 0 (a broken model):
    # the features do not drift, the predictions do (the 1 h window leaves the 20 old rows out)
    _log_with_predictions(ws, like_reference(reference, 300, seed=6), [0] * 300)
    result = check_drift(ws, FAMILY, dag_run_id="pred", overrides={"window_hours": 1})
    assert result.status == "drift" and result.prediction_drift is True, result.reasons
    assert any(r.startswith("prediction drift") for r in result.reasons)
    assert not any(r.startswith("data drift") for r in result.reasons), result.reasons


def test_scheduled_selection_follows_each_familys_settings(family):
    from automl_tasks.monitoring.drift_check import monitored_families
    from automl_tasks.monitoring.drift_settings import family_settings, save_family_settings

    ws, client = family, mlflow_client(family)
    assert monitored_families(ws) == [FAMILY]  # never checked: due
    check_drift(ws, FAMILY, dag_run_id="tick")  # an empty log: insufficient data, but checked
    assert monitored_families(ws) == []  # checked just now; due again in 24 h
    assert monitored_families(ws, now=time.time() + 25 * 3600) == [FAMILY]
    save_family_settings(client, FAMILY, {"check_every_hours": "1", "drift_share": 0.5})
    assert family_settings(client, FAMILY).drift_share == 0.5
    assert monitored_families(ws, now=time.time() + 2 * 3600) == [FAMILY]
    save_family_settings(client, FAMILY, {"enabled": False})
    assert monitored_families(ws, now=time.time() + 48 * 3600) == []
    with pytest.raises(ConfigurationError, match="drift_share"):
        save_family_settings(client, FAMILY, {"drift_share": 7})
    assert family_settings(client, FAMILY).drift_share == 0.5  # a refused change stores nothing


def test_the_family_setting_method_picks_an_installed_drift_check(family, tmp_path, monkeypatch):
    """A drift check contributed through the `loopml.drift_checks` entry point group is what
    check_drift uses when the family's `method` names it; an unknown name is refused."""
    marker = tmp_path / "measured.txt"
    (tmp_path / "contrib_drift.py").write_text(
        "from automl_tasks.monitoring.drift import EvidentlyDriftCheck\n"
        "class RecordingDriftCheck(EvidentlyDriftCheck):\n"
        "    name = 'recording'\n"
        "    def measure(self, reference, current, schema, **options):\n"
        f"        open({str(marker)!r}, 'a').write(f'{{len(current)}}\\n')\n"
        "        return super().measure(reference, current, schema, **options)\n"
    )
    info = tmp_path / "contrib_drift-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: contrib-drift\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loopml.drift_checks]\nrecording = contrib_drift:RecordingDriftCheck\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    ws, reference = family, bundled_frame("breast_cancer")
    log_requests(ws, FAMILY, shifted(reference, "target", 300, seed=3), labels=False)
    with pytest.raises(ConfigurationError, match="'method' must be one of .*evidently.*recording"):
        check_drift(ws, FAMILY, dag_run_id="unknown", overrides={"method": "nope"})
    result = check_drift(ws, FAMILY, dag_run_id="contrib", overrides={"method": "recording"})
    assert marker.read_text().split() == ["300"], "the contributed check measured the window"
    assert result.status == "drift", result.reasons
