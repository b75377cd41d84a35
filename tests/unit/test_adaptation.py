"""The adaptation methods, miniaturisation, export and the Pareto choice, on a tiny BERT.

Each claim is checked against what would break it: a method that trained nothing keeps its
initial loss; a student that ignored its teacher stays as far from it; an export that lost
the LoRA update differs from the PEFT model it came from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from automl_tasks.adaptation.estimator import TextAdapterEstimator
from automl_tasks.adaptation.inference import softmax, torch_logits
from automl_tasks.adaptation.methods import METHODS
from automl_tasks.estimators import DataSpec, Metric
from tests.text_models import tiny_bert, toy_reviews

LEARNING_RATES = {"head": 3e-2, "full": 1e-3, "lora": 1e-2, "prompt": 1e-1, "adapter": 3e-2}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert") / "tiny", layers=4)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.parquet"
    toy_reviews(240).to_parquet(path)
    return DataSpec(str(path), "label", "binary")


def _estimator(base, data, method, epochs, *, trainer=False, output_dir=None, **extra):
    args = {
        "method": method,
        "base_model": str(base),
        "epochs": epochs,
        "max_seq_len": 32,
        f"method.{method}.learning_rate": LEARNING_RATES[method],
        **extra,
    }
    return TextAdapterEstimator(
        run_epochs=None,
        data=data,
        is_trainer=trainer,
        model_args=args,
        metric=Metric("accuracy"),
        output_dir=output_dir,
    )


def _fit_loss(estimator) -> float:
    fit_rows, _ = estimator.rows()
    logits = torch_logits(estimator.model_, [estimator.ids_[i] for i in fit_rows], estimator.pad_id_)
    target = torch.from_numpy(estimator.target_[fit_rows]).long()
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), target))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_only_its_own_parameters_and_reduces_the_loss(base, reviews, method):
    untrained = _estimator(base, reviews, method, 0)  # zero epochs: the same seed's initial model
    untrained.train()
    trained = _estimator(base, reviews, method, 4)
    trained.train()
    assert _fit_loss(trained) < 0.9 * _fit_loss(untrained)
    share = trained.calculate_score().metrics["trainable_share"]
    assert share == pytest.approx(1.0) if method == "full" else share < 0.05


def test_a_lora_model_exports_with_its_update_merged(base, reviews, tmp_path):
    """ONNX Runtime on the merged export matches the unmerged PEFT model, and the update is not zero."""
    import onnxruntime as ort

    estimator = _estimator(base, reviews, "lora", 3)
    estimator.train()
    ids = [estimator.ids_[i] for i in range(40)]
    peft_proba = softmax(torch_logits(estimator.model_, ids, estimator.pad_id_))
    path = estimator.export_onnx(tmp_path / "lora.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = pd.DataFrame({"text": pd.read_parquet(reviews.path)["text"].head(40)})
    onnx_proba = softmax(session.run(None, estimator.onnx_feed(frame))[0])
    assert np.abs(onnx_proba - peft_proba).max() < 1e-4
    from automl_tasks.core.base_model import load_encoder

    merged = estimator.plain().encoder.state_dict()
    original = load_encoder(base).state_dict()
    changed = [k for k in original if k.endswith("query.weight") and not torch.equal(original[k], merged[k])]
    assert changed, "the merged encoder equals the base model: the LoRA update was lost"


@pytest.mark.parametrize("method", ["lora", "prompt", "adapter", "full"])
def test_a_saved_version_holds_only_what_the_method_trained_and_reloads(base, reviews, tmp_path, method):
    from automl_tasks.adaptation.artifacts import load_adapted
    from automl_tasks.adaptation.methods import deployable

    estimator = _estimator(base, reviews, method, 2, trainer=True, output_dir=tmp_path / method)
    estimator.run()
    weights = sum(p.stat().st_size for p in (tmp_path / method).rglob("*.safetensors"))
    base_weights = (base / "model.safetensors").stat().st_size
    assert weights > 0.5 * base_weights if method == "full" else weights < 0.1 * base_weights
    reloaded, meta = load_adapted(tmp_path / method)
    assert meta.method == method and meta.base_digest
    ids = [estimator.ids_[i] for i in range(30)]
    expected = torch_logits(estimator.plain(), ids, estimator.pad_id_)
    assert np.allclose(torch_logits(deployable(reloaded, method), ids, estimator.pad_id_), expected, atol=1e-5)


def test_distillation_moves_a_student_towards_its_teacher(base, reviews):
    from automl_tasks.adaptation.miniaturise import StudentTraining, distil, fewer_layers, logits

    teacher_fit = _estimator(base, reviews, "full", 4)
    teacher_fit.train()
    teacher = teacher_fit.plain()
    rows = np.arange(len(teacher_fit.ids_))
    teacher_logits = logits(teacher, teacher_fit.ids_, rows, teacher_fit.pad_id_)
    student = fewer_layers(teacher, 1)
    torch.manual_seed(1)
    student.head.reset_parameters()  # a student that starts away from its teacher

    def divergence() -> float:
        p = softmax(teacher_logits)
        q = softmax(logits(student, teacher_fit.ids_, rows, teacher_fit.pad_id_))
        return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))

    before = divergence()
    fit_rows, _ = teacher_fit.rows()
    distil(
        student,
        teacher_fit.ids_,
        teacher_fit.target_,
        teacher_logits,
        fit_rows,
        teacher_fit.pad_id_,
        StudentTraining(epochs=4, learning_rate=1e-3),
    )
    assert divergence() < 0.5 * before
    assert len(student.encoder.encoder.layer) == 1 and student.encoder.config.num_hidden_layers == 1


def test_pruning_keeps_the_strongest_ffn_neurons_and_still_exports(base, reviews, tmp_path):
    from automl_tasks.adaptation.inference import export_classifier
    from automl_tasks.adaptation.miniaturise import pruned_ffn

    estimator = _estimator(base, reviews, "full", 1)
    estimator.train()
    teacher = estimator.plain()
    width = teacher.encoder.config.intermediate_size
    student = pruned_ffn(teacher, 0.5)
    layer = student.encoder.encoder.layer[0]
    assert layer.intermediate.dense.out_features == width // 2 == layer.output.dense.in_features
    kept = teacher.encoder.encoder.layer[0]
    norms = kept.intermediate.dense.weight.norm(dim=1) * kept.output.dense.weight.norm(dim=0)
    strongest = set(norms.topk(width // 2).indices.tolist())
    rows_kept = {
        i
        for i in range(width)
        if any(torch.equal(kept.intermediate.dense.weight[i], r) for r in layer.intermediate.dense.weight)
    }
    assert rows_kept == strongest
    assert export_classifier(student, tmp_path / "pruned.onnx").stat().st_size > 0


def test_the_champion_is_the_most_accurate_within_the_latency_budget():
    from automl_tasks.adaptation.pareto import Candidate, choose_champion, pareto_front

    def c(version, accuracy, latency, size=100.0, deployable=True):
        return Candidate(version, "x", "1", accuracy, latency, size, deployable)

    rows = [
        c("2", 0.95, 12.0),
        c("3", 0.93, 4.0),
        c("4", 0.90, 2.0),
        c("5", 0.97, 3.0, deployable=False),
        c("6", 0.89, 5.0),
    ]
    chosen, why = choose_champion(rows, 5.0)
    assert chosen.version == "3" and "within the budget of 5 ms" in why
    assert choose_champion(rows, 0)[0].version == "2"
    none, why = choose_champion(rows, 1.0)
    assert none is None and "no candidate meets the latency budget of 1 ms" in why and "v4" in why
    assert {x.version for x in pareto_front(rows)} == {"2", "3", "4"}


def test_a_budget_below_one_epoch_of_the_cheapest_method_is_refused():
    from automl_tasks.pipelines.adaptation import budget_refusal

    assert budget_refusal({"lora": 2.0, "head": 0.5}, 32, 640, 60) is None  # head: 10 s an epoch
    refusal = budget_refusal({"lora": 2.0, "head": 0.5}, 32, 6400, 60)  # head: 100 s an epoch
    assert refusal and "time_budget_s=60 is too small" in refusal and "100 s on 6400 texts" in refusal


def test_full_fine_tuning_is_searched_only_where_the_budget_allows():
    from automl_tasks.pipelines.adaptation import full_fine_tuning_refusal

    assert full_fine_tuning_refusal(1.0, 32, 640, 120) is None  # 20 s an epoch: within a quarter of 120 s
    refusal = full_fine_tuning_refusal(1.0, 32, 640, 60)  # 20 s an epoch: over a quarter of 60 s
    assert refusal == (
        "full fine-tuning left out of the search: one epoch on 640 texts is estimated at 20 s, "
        "over 25% of the 60 s budget"
    )


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_the_trust_report_of_an_adapted_text_model_attacks_its_token_embeddings(base, reviews, tmp_path, method):
    """A merged LoRA model and a prompt-tuned one (prompts prepended) both take embeddings:
    PGD in embedding space flips more predictions than noise of the same per-token norms."""
    from automl_tasks.trust.report import measure_trust
    from automl_tasks.trust.subject import text_subject

    estimator = _estimator(base, reviews, method, 8, trainer=True, output_dir=tmp_path / "out")
    estimator.run()
    report = measure_trust(text_subject(estimator, Metric("accuracy")))
    attack = report.adversarial
    assert attack is not None and attack.attack == "PGD (white-box, token embeddings)", report.skipped
    assert attack.clean_accuracy > 0.6  # learned something to attack
    assert attack.extra["pgd_accuracy_eps0.5"] < attack.extra["same_norm_noise_accuracy_eps0.5"] - 0.1
    assert report.membership is not None and report.curves[0].name == "token_replacement"
