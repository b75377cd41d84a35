"""What a trust report measures: a fitted model, rows it learned from and rows it never saw.

One small adapter per model kind (a tabular pipeline, the digits CNN) so the attacks below
read one interface: `predict_proba`/`predict` on the model's own input (a feature frame or
an image array), and, for differentiable models, the torch network behind it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.estimators.metrics import Metric
from automl_tasks.trust.query_runtime import onnx_query_proba

TABLE, IMAGE, TEXT = "table", "image", "text"


@dataclass(frozen=True)
class Rows:
    """Model inputs (a DataFrame of model columns, an array of images, or an object array of
    token-id lists) and their targets."""

    x: Any
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, positions: np.ndarray) -> Rows:
        x = self.x.iloc[positions] if hasattr(self.x, "iloc") else self.x[positions]
        return Rows(x, self.y[positions])


@dataclass(frozen=True)
class TrustSubject:
    """A fitted model with the rows a trust report needs.

    `members`: rows the model was fitted on; `held_out`: rows it never saw (the test split).
    `predict_proba` is None for regressors. `network` is set for differentiable models, which
    get white-box attacks: an image network (float tensors, values in [0, 1]), a tabular MLP
    (its preprocessed input, `encode`), a text classifier (`forward_embeddings` on token
    embeddings); every other classifier gets a black-box attack."""

    model_kind: str
    kind: str  # TABLE | IMAGE
    task_type: str
    metric: Metric
    members: Rows
    held_out: Rows
    predict: Callable[[Any], np.ndarray]
    predict_proba: Callable[[Any], np.ndarray] | None = None
    classes: np.ndarray | None = None  # the labels predict_proba's columns stand for
    numeric: tuple[str, ...] = ()  # numeric model columns of a table
    categorical: tuple[str, ...] = ()
    network: Any = None
    dp_epsilon: float | None = None  # the privacy accountant's final epsilon, when trained with DP
    unknown_token: int | None = None  # a text model's [UNK] id: token noise replaces tokens with it
    pad_token: int = 0  # a text model's padding id
    #: a tabular network's input: `encode(x)` is the preprocessed matrix `network` reads, of
    #: which the `moved_inputs` columns (the scaled numbers) are what a white-box attack moves
    encode: Callable[[Any], np.ndarray] | None = None
    moved_inputs: Any = None
    #: builds the same model's `predict_proba` on a faster runtime (query_runtime.py), for an
    #: attack that asks many small questions; returns None when it cannot (use `predict_proba`)
    query_runtime: Callable[[], Callable[[Any], np.ndarray] | None] | None = None
    #: a table's columns computed from other columns (a feature pipeline's frequencies and
    #: interactions) made again from their sources after noise or an attack moved those:
    #: `numeric` then holds only the columns a person gives, as served rows do
    recompute: Callable[[Any], Any] | None = None

    @property
    def classifies(self) -> bool:
        return self.task_type != "regression"

    @functools.cached_property
    def _fast_proba(self) -> Callable[[Any], np.ndarray] | None:
        # built once (an export, checked for parity) for the noise curves and the attack
        return self.query_runtime() if self.query_runtime is not None else None

    def proba_for_queries(self) -> Callable[[Any], np.ndarray]:
        """`predict_proba` for many calls on points the model never saw (a black-box attack,
        the noise curves): the faster runtime's when there is one."""
        return self._fast_proba or self.predict_proba

    def consistent(self, x: Any) -> Any:
        """`x` with its computed columns made from its (moved) sources (`recompute`)."""
        return self.recompute(x) if self.recompute is not None else x

    def metric_prediction(self, x: Any, *, for_queries: bool = False) -> np.ndarray:
        """What the metric scores: probabilities when it needs them (`for_queries`: from
        `proba_for_queries`), else predictions."""
        if self.metric.needs_proba and self.predict_proba is not None:
            proba = self.proba_for_queries() if for_queries else self.predict_proba
            return np.asarray(proba(x))
        return np.asarray(self.predict(x))

    def score(self, rows: Rows, *, for_queries: bool = False) -> float:
        """The subject's metric on `rows`. `for_queries`: probabilities from the runtime a
        black-box attack queries. Why: the noise curves score ten noisy copies of up to 2,000
        held-out rows, and a 5-member ensemble's pipelines took ~0.2 s a call natively (2 s of
        the report's 7.7 s on hmda)."""
        return float(self.metric(rows.y, self.metric_prediction(rows.x, for_queries=for_queries), self.classes))


def tabular_subject(
    estimator: Any,
    metric: Metric,
    *,
    workdir: Path | None = None,
    onnx_path: Path | None = None,
    export_s: float | None = None,
) -> TrustSubject:
    """The subject of a fitted TabularEstimator in trainer mode: its fit rows (train+valid)
    are the members, its test split is held out. Pass the model the test score was measured
    on (`FitResult.scored`): a refit on all rows has no unseen rows left.

    With a `workdir`, a black-box attack queries the model's ONNX export made there
    (`onnx_path`: a file that already is its export), checked on the held-out rows;
    `export_s`: what exporting a model like it took (query_runtime.py weighs it)."""
    pipeline = estimator.pipeline_
    fit_rows, test_rows = estimator._rows()
    features, target = estimator.features_, estimator.target_
    classify = estimator.data.task_type != "regression"
    network = _tabular_network(pipeline) if classify else {}
    held_out = features.iloc[test_rows]
    computed, recompute = computed_columns(estimator.schema_)
    query_runtime = None
    if workdir is not None and classify:
        query_runtime = functools.partial(
            onnx_query_proba, pipeline, estimator.schema_, workdir, held_out, onnx_path=onnx_path, export_s=export_s
        )
    return TrustSubject(
        model_kind=_model_kind(estimator),
        kind=TABLE,
        task_type=estimator.data.task_type,
        metric=metric,
        members=Rows(features.iloc[fit_rows], target[fit_rows]),
        held_out=Rows(held_out, target[test_rows]),
        predict=pipeline.predict,
        predict_proba=pipeline.predict_proba if classify else None,
        classes=getattr(pipeline, "classes_", None),
        numeric=tuple(c for c in estimator.schema_.model_numeric if c not in computed),
        categorical=estimator.schema_.model_categorical,
        dp_epsilon=dp_epsilon_of(estimator),
        query_runtime=query_runtime,
        recompute=recompute,
        **network,
    )


def computed_columns(schema: Any) -> tuple[set[str], Callable[[pd.DataFrame], pd.DataFrame] | None]:
    """The model columns a feature pipeline computes from other model columns (frequencies,
    interactions: `FeaturePipeline.graph_steps`), and a function that makes them again in a
    frame of model columns, as the pipeline and the exported graph do; (set(), None) when
    there are none. Noise and attacks move what a person gives (the sources), so the
    computed columns follow them, and the model's ONNX export, which computes them itself,
    answers the same points as the native model (query_runtime.py)."""
    derive = getattr(schema, "derive", None)
    names = schema.model_names
    plan = {
        names[column]: (op, *(names.get(s) for s in sources))
        for column, (op, *sources) in (derive.graph_steps.items() if derive is not None else ())
        if column in names
    }
    plan = {column: step for column, step in plan.items() if all(step[1:])}  # sources the model reads
    if not plan:
        return set(), None
    shares = {names[source]: derive.frequencies[source] for source in derive.frequencies if source in names}

    def recompute(frame: pd.DataFrame) -> pd.DataFrame:
        from automl_tasks.features.steps import frequency_column, interaction

        made = {}
        for column, (op, *sources) in plan.items():
            if column not in frame.columns:
                continue
            if op == "frequency":
                made[column] = frequency_column(frame[sources[0]], shares[sources[0]])
            else:
                values = interaction(frame[sources[0]], frame[sources[1]], op)
                made[column] = np.where(np.isfinite(values), values, np.nan)  # the pipeline's inf -> NaN
        return frame.assign(**made)

    return set(plan), recompute


def _tabular_network(pipeline: Any) -> dict[str, Any]:
    """For a pipeline ending in the torch MLP (whose preprocessing puts the scaled numeric
    columns first): its network, the preprocessing as `encode` and the numeric inputs; {}
    for any other model, which gets the black-box attack."""
    model = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
    if model is None or not hasattr(model, "network_"):
        return {}
    preprocess = pipeline[:-1]
    numeric = preprocess[-1].output_indices_.get("numeric", slice(0, 0))
    if numeric.stop <= numeric.start:
        return {}
    return {"network": model.network_, "encode": preprocess.transform, "moved_inputs": numeric}


def dp_epsilon_of(estimator: Any) -> float | None:
    """The privacy accountant's final epsilon of a model trained with DP-SGD, else None
    (an ensemble is private only when every member is: it reports the sum, by composition)."""
    members = getattr(estimator, "members_", None)
    if members:
        spent = [dp_epsilon_of(m) for m in members]
        return None if any(e is None for e in spent) else float(sum(spent))
    if hasattr(estimator, "network_"):  # an image network
        return getattr(estimator, "dp_epsilon_", None)
    pipeline = getattr(estimator, "pipeline_", None)
    model = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    return getattr(model, "dp_epsilon_", None)


def _model_kind(estimator: Any) -> str:
    from automl_tasks.estimators.tabular import model_of

    members = getattr(estimator, "members_", None)
    if members:
        return "ensemble of " + ", ".join(sorted({model_of(m.model_args) for m in members}))
    return str(model_of(estimator.model_args))


def image_subject(estimator: Any, metric: Metric) -> TrustSubject:
    """The subject of a fitted image classifier (the digits CNN) in trainer mode."""
    fit_rows, test_rows = estimator._rows()
    images, target = estimator.images_, estimator.target_

    def proba(x: np.ndarray) -> np.ndarray:
        logits = estimator._logits(np.asarray(x, dtype="float32"))
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    return TrustSubject(
        model_kind="digits_cnn",
        kind=IMAGE,
        task_type="multiclass",
        metric=metric,
        members=Rows(images[fit_rows], target[fit_rows]),
        held_out=Rows(images[test_rows], target[test_rows]),
        predict=lambda x: proba(x).argmax(axis=1),
        predict_proba=proba,
        classes=np.arange(len(estimator.classes_)),
        network=estimator.network_,
        dp_epsilon=dp_epsilon_of(estimator),
    )


def text_subject(estimator: Any, metric: Metric) -> TrustSubject:
    """The subject of a fitted text classifier (adaptation's TextAdapterEstimator, trainer
    mode): inputs are its token-id lists, targets its class indices."""
    fit_rows, test_rows = estimator.rows()
    ids = np.empty(len(estimator.ids_), dtype=object)
    ids[:] = [list(row) for row in estimator.ids_]

    def proba(x: np.ndarray) -> np.ndarray:
        return estimator.probabilities(list(x))

    tokenizer = estimator.tokenizer_
    network = estimator.plain()  # the served model: adapters merged, prompts prepended
    return TrustSubject(
        model_kind=f"text ({estimator.method})",
        kind=TEXT,
        task_type=estimator.data.task_type,
        metric=metric,
        members=Rows(ids[fit_rows], estimator.target_[fit_rows]),
        held_out=Rows(ids[test_rows], estimator.target_[test_rows]),
        predict=lambda x: proba(x).argmax(axis=1),
        predict_proba=proba,
        classes=np.arange(len(estimator.classes_)),
        unknown_token=tokenizer.unk_token_id if tokenizer.unk_token_id is not None else estimator.pad_id_,
        network=network if hasattr(network, "forward_embeddings") else None,
        pad_token=estimator.pad_id_,
    )


def subject_for(
    estimator: Any,
    metric: Metric,
    *,
    workdir: Path | None = None,
    onnx_path: Path | None = None,
    export_s: float | None = None,
) -> TrustSubject:
    """The subject of a fitted trainer-mode estimator: a tabular pipeline or an image
    network; any other estimator raises NotImplementedError saying so. `workdir`,
    `onnx_path` and `export_s`: see `tabular_subject`."""
    if hasattr(estimator, "pipeline_") and hasattr(estimator, "features_"):
        return tabular_subject(estimator, metric, workdir=workdir, onnx_path=onnx_path, export_s=export_s)
    if hasattr(estimator, "images_") and hasattr(estimator, "network_"):
        return image_subject(estimator, metric)
    raise NotImplementedError(
        f"no trust report for {type(estimator).__name__} models (tabular pipelines and image networks have one)"
    )
