"""Trust reports (issue #17): the attacks find what they must, DP training accounts its
epsilon, and a gate threshold blocks a promotion that breaks it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.core.tags import TRUST_ADV_ACCURACY_TAG, TRUST_DP_EPSILON_TAG, TRUST_MIA_AUC_TAG
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.promotion import GateConfig, judge, promote, store_gate
from automl_tasks.trust import adversarial
from automl_tasks.trust.membership import loss_threshold_attack
from automl_tasks.trust.noise import noise_curves
from automl_tasks.trust.report import ADVERSARIAL, DIFFERENTIAL_PRIVACY, MEMBERSHIP, NOISE, measure_trust
from automl_tasks.trust.subject import IMAGE, TABLE, Rows, TrustSubject, subject_for

from .test_promotion import _register
from .test_promotion import tags as version_tags


def _table(rows: int, seed: int = 0, noise: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numeric columns and a category; the label is a noisy linear rule of the numbers."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(2, 3, rows)})
    x["colour"] = rng.choice(["red", "blue"], rows).astype(object)
    y = (x["a"] + x["b"] / 3 + rng.normal(0, noise, rows) > 0.7).astype(int).to_numpy()
    return x, y


def _subject(model, members, held_out, task="binary", metric="roc_auc") -> TrustSubject:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pipeline = make_pipeline(
        ColumnTransformer([("n", StandardScaler(), ["a", "b"]), ("c", OneHotEncoder(), ["colour"])]), model
    ).fit(*members)
    classify = task != "regression"
    return TrustSubject(
        model_kind=type(model).__name__,
        kind=TABLE,
        task_type=task,
        metric=Metric(metric),
        members=Rows(*members),
        held_out=Rows(*held_out),
        predict=pipeline.predict,
        predict_proba=pipeline.predict_proba if classify else None,
        classes=getattr(pipeline, "classes_", None),
        numeric=("a", "b"),
        categorical=("colour",),
    )


def test_membership_attack_finds_a_memorising_model_and_not_a_regularised_one():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    # a tiny training set learned by heart (fully grown trees on noisy labels) leaks membership
    memorising = _subject(RandomForestClassifier(100, random_state=0), _table(60, 0, 2.0), _table(2000, 1, 2.0))
    assert loss_threshold_attack(memorising).auc > 0.75
    # a strongly regularised linear model on many rows cannot tell its rows from new ones
    regularised = _subject(LogisticRegression(C=0.01), _table(3000, 2), _table(3000, 3))
    result = loss_threshold_attack(regularised)
    assert abs(result.auc - 0.5) < 0.05 and result.rows_per_side == 2000


def test_black_box_attack_never_beats_the_true_distance_to_a_linear_boundary(monkeypatch):
    """For a linear model the smallest flipping perturbation is known exactly: what
    HopSkipJump finds (an upper bound) is never smaller and is close to it."""
    from sklearn.linear_model import LogisticRegression

    subject = _subject(LogisticRegression(), _table(2000, 4), _table(400, 5))
    monkeypatch.setattr(adversarial, "BLACK_BOX_ROWS", 12)
    result = adversarial.attack(subject)
    assert result.attack.startswith("HopSkipJump") and result.rows == 12

    # exact RMS distance to the boundary in training-std units, for the rows the attack picked
    std = subject.members.x[["a", "b"]].std().to_numpy()
    pipeline = subject.predict.__self__
    scaler, model = pipeline[0].named_transformers_["n"], pipeline[-1]
    w_std = model.coef_[0][:2] / scaler.scale_ * std  # the logit's slope per training std of each column
    held = subject.held_out
    picked = np.sort(np.random.default_rng(0).choice(len(held), 12, replace=False))
    logits = model.decision_function(pipeline[0].transform(held.x.iloc[picked]))
    exact = np.abs(logits) / np.linalg.norm(w_std) / np.sqrt(2)
    correct = pipeline.predict(held.x.iloc[picked]) == held.y[picked]
    assert result.clean_accuracy == pytest.approx(correct.mean())
    assert result.median_perturbation >= np.median(exact[correct]) * 0.999
    assert result.median_perturbation <= np.median(exact[correct]) * 2.0


def test_an_attack_art_would_never_end_stops_at_its_call_budget_with_the_nearest_flip_found(monkeypatch, caplog):
    """After its first gradient estimate (a batch of 30+ points) this model calls no lone point
    adversarial any more, as a float32 model may judge a boundary point otherwise in another
    batch: ART's step-size search, one point at a time, would halve its step for ever."""
    import threading

    from sklearn.linear_model import LogisticRegression

    honest = _subject(LogisticRegression(), _table(2000, 4), _table(400, 5))
    held = honest.held_out
    row = int(np.flatnonzero((held.y == 0) & (honest.predict(held.x) == 0))[0])  # rightly class 0
    estimated = threading.Event()

    calls = [0]

    def inconsistent(x):
        calls[0] += 1
        if 30 <= len(x) <= adversarial.HSJ_MAX_EVAL:  # a gradient estimate (not the anchors' 2,000)
            estimated.set()
        if len(x) == 1 and estimated.is_set():
            return np.array([[1.0, 0.0]])  # a lone point: the row's own class
        return honest.predict_proba(x)

    subject = TrustSubject(**{**honest.__dict__, "predict_proba": inconsistent, "held_out": held.take(np.array([row]))})
    monkeypatch.setattr(adversarial, "BLACK_BOX_ROWS", 1)
    outcome: dict = {}
    with caplog.at_level("WARNING", logger=adversarial.__name__):
        worker = threading.Thread(target=lambda: outcome.update(result=adversarial.attack(subject)), daemon=True)
        worker.start()
        worker.join(timeout=120)
    assert not worker.is_alive(), "the attack did not end"
    result = outcome["result"]
    assert result.rows == 1 and result.clean_accuracy == 1.0
    assert np.isfinite(result.median_perturbation)  # the flips it asked about before the loop
    assert "HopSkipJump was stopped on 1 of 1 rows" in caplog.text
    assert calls[0] < 120  # stopped when it asked about one point again and again, not at MAX_ROW_CALLS


def test_noise_curves_start_at_the_clean_score_and_fall_for_a_model_of_the_numbers():
    from sklearn.linear_model import LogisticRegression

    subject = _subject(LogisticRegression(), _table(2000, 6, 0.1), _table(1000, 7, 0.1), metric="accuracy")
    gaussian, flips = noise_curves(subject)
    assert gaussian.scores[0] == pytest.approx(subject.score(subject.held_out))
    assert gaussian.scores[-1] < gaussian.scores[0] - 0.1 and gaussian.area < gaussian.scores[0]
    assert flips.name == "category_flip" and flips.scores[0] == gaussian.scores[0]


def test_a_regressor_gets_no_adversarial_number_and_says_why():
    from sklearn.linear_model import Ridge

    x, y = _table(500, 8)
    subject = _subject(Ridge(), (x.iloc[:400], x["a"].to_numpy()[:400]), (x.iloc[400:], x["a"].to_numpy()[400:]),
                       task="regression", metric="r2")  # fmt: skip
    report = measure_trust(subject)
    assert report.adversarial is None and "classifiers only" in report.skipped[ADVERSARIAL]
    assert "not trained with differential privacy" in report.skipped[DIFFERENTIAL_PRIVACY]
    assert not any(k.startswith("trust_adv") for k in report.metrics())
    assert report.membership is not None and "trust_mia_auc" in report.metrics()
    assert TRUST_ADV_ACCURACY_TAG not in report.tags() and "adversarial" in report.tags()["loopml.trust.skipped"]
    assert set(report.part_seconds) == {NOISE, MEMBERSHIP}  # what each measured part took; none for a skipped one


def test_an_estimator_without_a_trust_adapter_is_refused_by_name():
    with pytest.raises(NotImplementedError, match="no trust report for object"):
        subject_for(object(), Metric("accuracy"))


def _trained_ensemble(tmp_path):
    """loopml's ensemble estimator (LightGBM + a forest) in trainer mode on a small table
    with missing numbers and a category: the kind of model the black-box attack is for."""
    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.ensemble import EnsembleEstimator, ensemble_config
    from tests.tabular_models import small_table

    small_table("multiclass", 300).to_parquet(tmp_path / "table.parquet")
    members = [
        {"model": "lightgbm", "categorical_encoding": "native"},
        {"model": "random_forest", "model.random_forest.n_estimators": 20, "categorical_encoding": "onehot"},
    ]
    estimator = EnsembleEstimator(
        run_epochs=None,
        data=DataSpec(str(tmp_path / "table.parquet"), "target", "multiclass"),
        is_trainer=True,
        model_args=ensemble_config(members, [0.6, 0.4]),
        metric=Metric("accuracy"),
        output_dir=tmp_path / "model",
    )
    estimator.run()
    return estimator


def _count_calls(subject: TrustSubject) -> tuple[TrustSubject, list[int]]:
    """The subject with its native predict_proba counting the rows it is asked about."""
    from dataclasses import replace

    asked: list[int] = []

    def counted(x):
        asked.append(len(x))
        return subject.predict_proba(x)

    return replace(subject, predict_proba=counted), asked


def test_the_black_box_attack_queries_the_onnx_export_of_the_model_it_reports_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(adversarial, "BLACK_BOX_ROWS", 6)
    estimator = _trained_ensemble(tmp_path)
    subject, asked = _count_calls(subject_for(estimator, Metric("accuracy"), workdir=tmp_path / "trust"))
    held = subject.held_out.x
    np.testing.assert_allclose(subject.proba_for_queries()(held), subject.predict_proba(held), atol=1e-6)
    asked.clear()
    result = adversarial.attack(subject)
    assert result.rows == 6 and asked == []  # every query went to ONNX Runtime
    exported = tmp_path / "trust" / "trust_queries.onnx"
    assert exported.is_file()

    # a file that already is the model's export (the registered version's) is queried as it is
    reused, _ = _count_calls(subject_for(estimator, Metric("accuracy"), workdir=tmp_path / "again", onnx_path=exported))
    np.testing.assert_allclose(reused.proba_for_queries()(held), subject.predict_proba(held), atol=1e-6)
    assert not (tmp_path / "again").exists()

    # without a folder to export to, the same attack asks the native model
    native, native_asked = _count_calls(subject_for(estimator, Metric("accuracy")))
    assert adversarial.attack(native).clean_accuracy == result.clean_accuracy
    assert len(native_asked) > 20

    # a new export is weighed against the attack's native calls: made when exporting a model
    # like this one was quick, not when it took longer than the calls would (the file given
    # as the model's export costs nothing and is always queried)
    quick = subject_for(estimator, Metric("accuracy"), workdir=tmp_path / "quick", export_s=1e-6)
    assert quick.proba_for_queries() is not quick.predict_proba
    slow = subject_for(estimator, Metric("accuracy"), workdir=tmp_path / "slow", export_s=1e6)
    with caplog.at_level("INFO", logger="automl_tasks.trust.query_runtime"):
        assert slow.proba_for_queries() is slow.predict_proba
    assert "exporting it would take ~1000000 s, its 130 calls natively" in caplog.text
    assert not (tmp_path / "slow").exists()
    given = subject_for(estimator, Metric("accuracy"), workdir=tmp_path / "given", onnx_path=exported, export_s=1e6)
    assert given.proba_for_queries() is not given.predict_proba


def test_the_noise_curves_score_through_the_export_and_draw_the_native_models_curves(tmp_path):
    estimator = _trained_ensemble(tmp_path)
    native = noise_curves(subject_for(estimator, Metric("roc_auc")))  # no folder to export to
    subject, asked = _count_calls(subject_for(estimator, Metric("roc_auc"), workdir=tmp_path / "trust"))
    curves = noise_curves(subject)
    assert asked == []  # every noisy copy was scored by ONNX Runtime
    assert [c.name for c in curves] == [c.name for c in native] == ["gaussian", "category_flip"]
    for ours, theirs in zip(curves, native, strict=True):
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-3)
    assert subject.proba_for_queries() is subject.proba_for_queries()  # exported once for noise and attack
    assert len(list((tmp_path / "trust").glob("*.onnx"))) == 1


def test_an_export_that_could_answer_the_attacks_points_otherwise_is_not_queried(tmp_path, caplog):
    """Parity on held-out rows does not cover an attack's points: a float32 graph (a linear
    model's) is left alone."""
    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.tabular import TabularEstimator
    from automl_tasks.trust.query_runtime import _not_the_same_function
    from tests.tabular_models import small_table

    small_table("multiclass", 300).to_parquet(tmp_path / "table.parquet")
    linear = TabularEstimator(
        run_epochs=None,
        data=DataSpec(str(tmp_path / "table.parquet"), "target", "multiclass"),
        is_trainer=True,
        model_args={"model": "linear"},
        metric=Metric("accuracy"),
        output_dir=tmp_path / "model",
    )
    linear.run()
    subject = subject_for(linear, Metric("accuracy"), workdir=tmp_path / "trust")
    with caplog.at_level("INFO", logger="automl_tasks.trust.query_runtime"):
        assert subject.proba_for_queries() == subject.predict_proba
    assert "query the native model (its ONNX graph is fed float32" in caplog.text
    assert not (tmp_path / "trust").exists()
    assert _not_the_same_function(None, lambda _: np.float64) == ""  # a float64 graph (trees) is queried


def test_columns_a_feature_pipeline_computes_follow_their_sources_and_the_export_answers_as_the_model(
    tmp_path, monkeypatch
):
    """A model reading a frequency and an interaction column: noise and the attack move the
    columns a person gives and make the computed ones again, as serving does, so the ONNX
    graph (which computes them itself) is queried and answers as the native model."""
    from tests.unit.test_feature_pipeline import derived_feature_estimator, table

    config = {
        "model": "random_forest",
        "model.random_forest.n_estimators": 30,
        "high_cardinality_encoding": "frequency",
        "interactions": 1,
        "text_components": 0,
    }
    product = (("a", "x", "b", 0.1),)  # the target follows a*b
    estimator = derived_feature_estimator(table(600), config, tmp_path, interactions=product)
    subject, asked = _count_calls(subject_for(estimator, Metric("roc_auc"), workdir=tmp_path / "trust"))
    names = estimator.schema_.model_names
    made, freq = names["a__x__b"], names["city__freq"]
    assert {names["a"], names["b"]} <= set(subject.numeric) and not {made, freq} & set(subject.numeric)

    held = subject.held_out.x
    moved = held.assign(
        **{names["a"]: held[names["a"]] + 1.0, names["city"]: held[names["city"]].iloc[::-1].to_numpy()}
    )
    again = subject.consistent(moved)
    np.testing.assert_allclose(again[made], moved[names["a"]] * moved[names["b"]])
    assert not np.allclose(again[freq], moved[freq])  # the categories moved, their shares follow

    onnx = subject.proba_for_queries()
    assert onnx is not subject.predict_proba  # the export is queried
    np.testing.assert_allclose(onnx(again), subject.predict_proba(again), atol=1e-6)
    # what the old attack did, moving a source and leaving the computed column: not one function
    assert np.abs(onnx(moved) - subject.predict_proba(moved)).max() > 0.05

    monkeypatch.setattr(adversarial, "BLACK_BOX_ROWS", 4)
    asked.clear()
    assert adversarial.attack(subject).rows == 4 and asked == []  # every query went to ONNX Runtime


def test_an_attack_on_a_model_without_a_faithful_export_queries_the_native_model_and_says_why(
    tmp_path, monkeypatch, caplog
):
    from automl_tasks.core.errors import ExportError
    from automl_tasks.estimators.onnx import conversion

    def no_export(*args, **kwargs):
        raise ExportError("no converter for this model")

    monkeypatch.setattr(adversarial, "BLACK_BOX_ROWS", 4)
    monkeypatch.setattr(conversion, "export_pipeline", no_export)
    subject, asked = _count_calls(subject_for(_trained_ensemble(tmp_path), Metric("accuracy"), workdir=tmp_path))
    with caplog.at_level("WARNING", logger="automl_tasks.trust.query_runtime"):
        result = adversarial.attack(subject)
    assert result.rows == 4 and len(asked) > 20
    assert "query the native model (no ONNX model to query: no converter for this model)" in caplog.text


def _digits_cnn(epochs: int):
    import torch
    from sklearn.datasets import load_digits

    from automl_tasks.estimators.digits_cnn import build_network

    x, y = load_digits(return_X_y=True)
    images = (x / 16.0).astype("float32").reshape(-1, 1, 8, 8)
    # seeded before the network is built: its initial weights come from torch's global
    # generator, whose state otherwise depends on the tests this worker ran before
    torch.manual_seed(0)
    network = build_network({"depth": 1, "block1": "conv", "block1.conv.width": 8}, 10)
    optimiser = torch.optim.Adam(network.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(images[:1400]), torch.from_numpy(y[:1400]).long()
    for _ in range(epochs):
        for batch in torch.randperm(len(xt)).split(64):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(network(xt[batch]), yt[batch]).backward()
            optimiser.step()
    network.eval()
    return network, images, y


def test_pgd_lowers_a_cnn_accuracy_more_than_noise_of_the_same_norm():
    import torch

    network, images, y = _digits_cnn(epochs=6)

    def proba(x):
        with torch.no_grad():
            return torch.softmax(network(torch.from_numpy(np.asarray(x, dtype="float32"))), 1).numpy()

    subject = TrustSubject(
        model_kind="cnn",
        kind=IMAGE,
        task_type="multiclass",
        metric=Metric("accuracy"),
        members=Rows(images[:1400], y[:1400]),
        held_out=Rows(images[1400:], y[1400:]),
        predict=lambda x: proba(x).argmax(1),
        predict_proba=proba,
        classes=np.arange(10),
        network=network,
    )
    result = adversarial.attack(subject)
    assert result.clean_accuracy > 0.9
    for eps in (0.1, 0.2):
        pgd, noise = result.extra[f"pgd_accuracy_eps{eps:g}"], result.extra[f"same_norm_noise_accuracy_eps{eps:g}"]
        assert pgd < noise - 0.2, (eps, pgd, noise)
        assert result.extra[f"pgd_accuracy_eps{eps:g}"] <= result.extra[f"fgsm_accuracy_eps{eps:g}"] + 0.02
    assert result.accuracy == result.extra["pgd_accuracy_eps0.1"] and np.isfinite(result.median_perturbation)


def test_dp_training_reports_a_finite_epsilon_that_grows_with_epochs():
    from automl_tasks.estimators.torch_mlp import TorchMLPClassifier

    x, y = _table(600, 9)
    model = TorchMLPClassifier(epochs=6, dp_epsilon=3.0).fit(x[["a", "b"]].to_numpy(), y)
    history = model.dp_epsilon_history_
    assert len(history) == 6 and all(np.isfinite(history))
    assert all(later > earlier for earlier, later in zip(history, history[1:], strict=False))
    assert model.dp_epsilon_ == history[-1] <= 3.0 + 1e-6 and model.dp_delta_ <= 1e-5
    assert (model.predict(x[["a", "b"]].to_numpy()) == y).mean() > 0.6  # still learns something


def test_gate_thresholds_block_a_version_that_breaks_them():
    leaky = version_tags(0.95) | {TRUST_MIA_AUC_TAG: "0.71", TRUST_ADV_ACCURACY_TAG: "0.9"}
    tight = GateConfig(max_attack_auc=0.6)
    result = judge(leaky, None, Metric("roc_auc"), tight)
    assert not result.promote and "membership-attack AUC 0.71 breaks" in result.reason
    assert judge(leaky | {TRUST_MIA_AUC_TAG: "0.55"}, None, Metric("roc_auc"), tight).promote
    unmeasured = judge(version_tags(0.95), None, Metric("roc_auc"), GateConfig(min_robust_accuracy=0.5))
    assert not unmeasured.promote and "none was measured" in unmeasured.reason
    private_only = judge(leaky, None, Metric("roc_auc"), GateConfig(max_dp_epsilon=8))
    assert not private_only.promote and "differential-privacy epsilon" in private_only.reason
    assert judge(leaky | {TRUST_DP_EPSILON_TAG: "3"}, None, Metric("roc_auc"), GateConfig(max_dp_epsilon=8)).promote
    with pytest.raises(ConfigurationError, match="max_attack_auc"):
        GateConfig(max_attack_auc=0.3)


def test_a_family_stored_gate_holds_for_automatic_promotions(workspace):
    from automl_tasks.core.tracking import mlflow_client

    family = "trusty"
    first = _register(workspace, family, 0.90)
    client = mlflow_client(workspace)
    client.set_model_version_tag(family, first, TRUST_MIA_AUC_TAG, "0.7")
    store_gate(workspace, family, GateConfig(max_attack_auc=0.6))
    assert GateConfig.stored(client, family).max_attack_auc == 0.6
    # an automatic promotion with the form's knobs (no trust threshold) still meets the family's
    decision = promote(workspace, family, first, triggered_by="test", config=GateConfig(margin=0.0))
    assert not decision["promoted"] and "membership-attack AUC 0.7 breaks" in decision["reason"]
    client.set_model_version_tag(family, first, TRUST_MIA_AUC_TAG, "0.52")
    assert promote(workspace, family, first, triggered_by="test")["promoted"]
    client.set_registered_model_tag(family, "loopml.gate.max_attack_auc", "lots")
    with pytest.raises(ConfigurationError, match="not a number"):
        GateConfig.stored(client, family)


def test_a_private_search_is_the_dp_mlp_alone_and_a_space_without_it_is_refused():
    from automl_tasks.core.errors import SearchSpaceError
    from automl_tasks.pipelines.nocode import deployment_goal
    from automl_tasks.pipelines.requests import NoCodeRequest
    from automl_tasks.search_space import load_search_space

    request = NoCodeRequest(dataset="breast_cancer", target="target", dp_epsilon=3)
    space = load_search_space(request.searched_space_text())
    assert space.find("model").range == ("mlp",)
    assert space.default_config()["model.mlp.dp_epsilon"] == 3.0
    assert deployment_goal(request)["ensemble"] is False  # members' epsilons would add up
    trees = "params:\n  - {name: model, type: string, range: [lightgbm, random_forest]}\n"
    with pytest.raises(SearchSpaceError, match="torch MLP only"):
        NoCodeRequest(dataset="breast_cancer", target="target", dp_epsilon=3, search_space=trees)
    assert NoCodeRequest(dataset="breast_cancer", target="target", search_space=trees).searched_space_text()


def test_the_advisor_names_the_best_trade_off_on_the_pareto_front():
    from automl_tasks.trust.trade_off import trade_off_note

    uri = "dataset://f.eval@1"

    def version(score, auc, robust, eval_uri=uri):
        tags = {"loopml.eval_score": str(score), "loopml.eval_dataset_uri": eval_uri, "loopml.metric": "roc_auc"}
        return tags | {TRUST_MIA_AUC_TAG: str(auc), TRUST_ADV_ACCURACY_TAG: str(robust)}

    versions = [
        ("1", version(0.95, 0.70, 0.5)),  # accurate, leaky
        ("2", version(0.93, 0.52, 0.8)),  # nearly as accurate, private and robust
        ("3", version(0.90, 0.55, 0.6)),  # dominated by v2
        ("4", version(0.99, 0.51, 0.9, "dataset://other@1")),  # scored on other data: not comparable
        ("5", {"loopml.eval_score": "0.99", "loopml.eval_dataset_uri": uri}),  # no trust report
    ]
    note = trade_off_note(versions, uri)
    assert note["param"] == "v2" and "of 3 versions with a trust report" in note["text"]
    assert "also on the front: v1" in note["text"] and "v3" not in note["text"]
    assert trade_off_note(versions[:1], uri) is None  # one version: nothing to weigh


def test_a_private_hpo_request_fixes_the_algorithms_own_dp_knob_or_is_refused():
    from automl_tasks.core.errors import LoopmlError
    from automl_tasks.pipelines.requests import HpoRequest
    from automl_tasks.search_space import load_search_space

    cnn = HpoRequest(algorithm="digits_cnn", dataset="digits", target="target", dp_epsilon=2)
    assert load_search_space(cnn.space_yaml()).default_config()["dp_epsilon"] == 2.0
    assert load_search_space(HpoRequest(algorithm="digits_cnn", dataset="digits").space_yaml()).find("dp_epsilon")
    tabular = HpoRequest(algorithm="tabular", dataset="breast_cancer", target="target", dp_epsilon=2)
    assert load_search_space(tabular.space_yaml()).find("model").range == ("mlp",)
    with pytest.raises(LoopmlError, match="differential privacy needs a `model` parameter"):
        HpoRequest(algorithm="broken_example", dataset="breast_cancer", target="target", dp_epsilon=2)


def test_the_tabular_mlp_meets_pgd_on_its_numeric_inputs_and_pgd_beats_noise_of_its_norm():
    from automl_tasks.estimators.features import FeatureSchema
    from automl_tasks.estimators.tabular import make_pipeline
    from automl_tasks.trust.subject import _tabular_network

    (x, y), (x_test, y_test) = _table(1500, 10, 0.3), _table(400, 11, 0.3)
    pipeline = make_pipeline({"model": "mlp"}, FeatureSchema(("a", "b"), ("colour",)), "binary").fit(x, y)
    network = _tabular_network(pipeline)
    assert network["moved_inputs"] == slice(0, 2)  # the scaled numbers; the one-hot colour stays
    subject = TrustSubject(
        model_kind="mlp",
        kind=TABLE,
        task_type="binary",
        metric=Metric("roc_auc"),
        members=Rows(x, y),
        held_out=Rows(x_test, y_test),
        predict=pipeline.predict,
        predict_proba=pipeline.predict_proba,
        classes=pipeline.classes_,
        numeric=("a", "b"),
        categorical=("colour",),
        **network,
    )
    result = adversarial.attack(subject)
    assert result.attack.startswith("PGD (white-box, L2") and result.clean_accuracy > 0.8
    assert result.extra["pgd_accuracy_eps0.5"] < result.extra["same_norm_noise_accuracy_eps0.5"] - 0.1
    assert result.extra["pgd_accuracy_eps1"] <= result.extra["pgd_accuracy_eps0.1"]
    assert result.accuracy == result.extra["pgd_accuracy_eps0.25"] and result.epsilon == 0.25
