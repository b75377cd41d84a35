"""The serving image: only what a family's models need, pinned from the lock (issue #16).

A Bento's image is built with `bentoml.images.Image` from the packages the serving path
imports (measured: a tabular ONNX family loads no Airflow, torch, TVM, DVC or Optuna) plus
what the family's versions need on their engine: OpenVINO or TVM for a version placed on
them, the model's own libraries for a native (non-ONNX) tabular model (torch for an MLP,
CatBoost for a CatBoost model whose export failed its parity check: the version's
`loopml.native_packages` tag), torch, transformers and the packaged sentence model for a
version whose features embed texts (its `loopml.feature_packages` tag, whatever its runtime),
transformers' tokenizers for a text family. Each
package is pinned at the version this environment has, which `make install` took from
requirements.lock, with the dependencies it declares.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections.abc import Iterable
from typing import Any

#: what the serving code imports for any family (BentoML, the registry, ONNX Runtime, the
#: native fallback's libraries, SHAP for /explain)
BASE_PACKAGES = (
    "bentoml",
    "mlflow",
    "onnxruntime",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "shap",
    "psutil",
)
#: what a version needs beyond them, by the engine it is placed on (`loopml.runtime`); a native
#: version whose tags name its packages (NATIVE_PACKAGES_TAG, every tabular version since the
#: sixteenth session) gets those instead of "native"'s, which covers any model loopml builds
ENGINE_PACKAGES = {"openvino": ("openvino",), "tvm": ("apache-tvm",), "native": ("torch", "catboost")}
TEXT_PACKAGES = ("transformers",)
#: the environment variable that tells the service module (imported by `bentoml build`) which
#: packages the family needs beyond BASE_PACKAGES (comma-separated); set by `loopml bento`
PACKAGES_ENV = "LOOPML_SERVING_PACKAGES"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pinned_closure(roots: Iterable[str]) -> list[str]:
    """`name==version` for each root and every dependency it declares (markers evaluated for
    this interpreter, extras left out), as installed here."""
    from packaging.requirements import Requirement

    wanted, seen = [_name(r) for r in roots], {}
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist.version
        for raw in dist.requires or ():
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(_name(requirement.name))
    return sorted(f"{name}=={version}" for name, version in seen.items())


def family_packages(versions: Iterable[Any]) -> tuple[str, ...]:
    """What the family's registered versions need beyond BASE_PACKAGES (from their tags)."""
    from automl_tasks.core.tags import FEATURE_PACKAGES_TAG, MODALITY_TAG, NATIVE_PACKAGES_TAG, RUNTIME_TAG

    needed: list[str] = []
    for version in versions:
        tags = version.tags
        runtime = tags.get(RUNTIME_TAG, "onnxruntime")
        if runtime == "native" and tags.get(NATIVE_PACKAGES_TAG):
            needed += tags[NATIVE_PACKAGES_TAG].split(",")
        else:
            needed += ENGINE_PACKAGES.get(runtime, ())
        if tags.get(FEATURE_PACKAGES_TAG):
            needed += tags[FEATURE_PACKAGES_TAG].split(",")
        if tags.get(MODALITY_TAG) == "text":
            needed += TEXT_PACKAGES
    return tuple(sorted(set(needed) - set(BASE_PACKAGES)))


def serving_image(extra: str = "") -> Any:  # -> bentoml.images.Image
    """The Bento's image: Python 3.11 with BASE_PACKAGES and `extra` (comma-separated), pinned."""
    import bentoml

    roots = [*BASE_PACKAGES, *(p.strip() for p in extra.split(",") if p.strip())]
    # already pinned: no resolver run at build time (it would need the package index)
    image = bentoml.images.Image(python_version="3.11", lock_python_packages=False)
    return image.python_packages(*pinned_closure(roots))
