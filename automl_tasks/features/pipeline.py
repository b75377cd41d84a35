"""The feature pipeline: raw input columns -> the columns a model is trained on.

Fitted once per pipeline run (`fit_feature_pipeline`) on the rows the search may see, then
frozen: `FeaturePipeline.transform` reads only its JSON state, so the same rows give the
same features in training and serving. Order of work:

1. the input columns it was fitted on (extra columns are ignored, missing ones refused);
2. the person's SQL steps (`features.sql_steps`), each adding columns;
3. column understanding (`features.roles`): identifier, constant and leak columns are
   dropped unless kept; datetime and text columns are replaced by their derived features;
4. the automatic steps (`features.steps`): datetime parts and cycles, frequency of
   high-cardinality categories, text components, numeric interactions; and, when the form
   asks, sentence embeddings of text columns (`features.embeddings`).

Which derived groups a model uses (cycles, how many text components and interactions,
embeddings or not, how high-cardinality categories are encoded) are search choices
(`model_columns`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import FeaturePipelineError
from automl_tasks.features import embeddings, steps
from automl_tasks.features.roles import (
    DATETIME,
    HIGH_CARDINALITY,
    TEXT,
    ColumnRole,
    column_roles,
    datetime_format,
    roles_summary,
)
from automl_tasks.features.sql_steps import SqlStep, check_sql_step, run_sql_step

log = logging.getLogger(__name__)

#: request value kinds of the raw input columns
NUMBER_INPUT, VALUE_INPUT = "number", "value"
#: search parameters of the feature groups (added to a space by `search.formatter`)
CYCLIC_PARAM = "datetime_cycles"
TEXT_PARAM = "text_components"
EMBEDDING_PARAM = "text_embedding"
INTERACTIONS_PARAM = "interactions"
HIGH_CARDINALITY_PARAM = "high_cardinality_encoding"
HIGH_CARDINALITY_CHOICES = ("frequency", "codes", "target")
FILE_NAME = "feature_pipeline.json"
#: a configuration without the text parameter reads every component
TEXT_ALL = 1_000_000


@dataclass(frozen=True)
class FeaturePipeline:
    """A fitted feature pipeline (all state JSON-able)."""

    inputs: dict[str, str]  # raw column -> NUMBER_INPUT | VALUE_INPUT, in table order
    sql_steps: tuple[SqlStep, ...] = ()
    roles: tuple[dict[str, str], ...] = ()  # column, role, why (raw and SQL-derived columns)
    excluded: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # flagged columns a person kept
    datetimes: dict[str, str] = field(default_factory=dict)  # column -> parse format ("" = ISO 8601)
    frequencies: dict[str, dict[str, float]] = field(default_factory=dict)  # high-cardinality column -> shares
    texts: dict[str, dict[str, Any]] = field(default_factory=dict)  # text column -> TF-IDF/SVD state
    embeddings: dict[str, dict[str, Any]] = field(default_factory=dict)  # text column -> sentence-vector PCA state
    interactions: tuple[tuple[str, str, str, float], ...] = ()  # (a, op, b, gain), best first
    cycles: bool = True  # whether datetime columns also give their sin/cos cycles
    #: set on a pipeline cut down to what a model reads (`pruned`): the recorded version it
    #: was cut from, the one lineage names and a retrain reuses
    fitted_version: str = ""
    #: where memoised sentence vectors of this version's table are (`features.embeddings`);
    #: not part of the state: set by the reader of the workspace's copy
    memo_dir: str = field(default="", compare=False, repr=False)

    # --- applying it ---------------------------------------------------------------------

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model-ready columns of `frame`'s rows (same index)."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise FeaturePipelineError(f"the feature pipeline needs input column(s) {missing}, which are missing")
        current = self._with_sql_columns(frame)
        derived: dict[str, Any] = {}
        for name, fmt in self.datetimes.items():
            plain, cyclic = steps.datetime_parts(current[name], fmt, name)
            derived |= plain | (cyclic if self.cycles else {})
        for name, shares in self.frequencies.items():
            derived[f"{name}{steps.SEP}freq"] = steps.frequency_column(current[name], shares)
        for name, state in self.texts.items():
            if state["components"]:
                derived |= dict(steps.text_components(current[name], state, name).items())
        for name, state in self.embeddings.items():
            derived |= embeddings.embedding_components(current[name], state, name, self.memo_dir)
        for a, op, b, _ in self.interactions:
            derived[steps.interaction_name(a, op, b)] = steps.interaction(current[a], current[b], op)
        replaced = set(self.excluded) | set(self.datetimes) | set(self.texts)
        base = current[[c for c in current.columns if c not in replaced]]
        extra = pd.DataFrame(derived, index=frame.index).replace([np.inf, -np.inf], np.nan)
        return pd.concat([base, extra], axis=1)

    def _with_sql_columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The typed inputs and the SQL steps' columns: what the automatic steps read."""
        current = self.typed_inputs(frame)
        for step in self.sql_steps:
            current = pd.concat([current, run_sql_step(current, step)], axis=1)
        return current

    def memoise(self, frame: pd.DataFrame, memo_dir: Path) -> None:
        """Store the sentence vectors of every text in `frame` (the run's table) in `memo_dir`,
        so the search's workers, the refit and the evaluation read them instead of encoding
        the table again (`features.embeddings`)."""
        if not self.embeddings:
            return
        current = self._with_sql_columns(frame)
        for name, state in self.embeddings.items():
            embeddings.write_memo(current[name], state, name, memo_dir)

    def load_models(self) -> None:
        """Load the models its steps run (the sentence encoder), checking each is the one it was
        fitted with: a served version pays this when it starts, not on its first request."""
        for name, state in self.embeddings.items():
            embeddings.check_model(state, name)

    def typed_inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The input columns as every caller sees them, whatever the source's types: numbers as
        float64 (a table's int64 and a JSON request's numbers alike), timestamps as ISO 8601
        text (as a request sends them), other values as text (a category sent as 3 or "3"
        is the text "3", as the models see it). SQL steps and the automatic steps then meet
        the same types in training and in serving."""
        data = {}
        for name, kind in self.inputs.items():
            column = frame[name]
            # NumPy, not pandas, conversions where they suffice: pandas' cost ~0.05 ms a
            # column, which every served single-row request pays
            if kind == NUMBER_INPUT:
                numeric = column.dtype.kind in "biuf"
                data[name] = (
                    column.to_numpy(dtype="float64", na_value=np.nan)
                    if numeric
                    else pd.to_numeric(column).astype("float64")
                )
            elif pd.api.types.is_datetime64_any_dtype(column):
                data[name] = column.dt.strftime("%Y-%m-%dT%H:%M:%S").astype("string")
            elif column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
                data[name] = column  # text already (None for missing), as DuckDB and the steps take it
            else:
                data[name] = column.astype("string")
        return pd.DataFrame(data, index=frame.index)

    # --- what the model chooses from -----------------------------------------------------

    @property
    def cyclic_columns(self) -> tuple[str, ...]:
        return tuple(c for name in self.datetimes for c in _cyclic_names(name)) if self.cycles else ()

    @property
    def passthrough(self) -> bool:
        """Whether it derives nothing (it only leaves columns out): then serving checks and
        converts a request exactly as for raw columns, on its fast path."""
        has_text = any(state["components"] for state in self.texts.values()) or bool(self.embeddings)
        return not (self.sql_steps or self.datetimes or self.frequencies or has_text or self.interactions)

    @property
    def graph_steps(self) -> dict[str, tuple[str, ...]]:
        """The derived columns an exported ONNX graph computes itself, each as (op, *inputs):
        ("frequency", category column) or (interaction op, a, b). Plain table lookups and
        arithmetic are standard ONNX ops; dates, texts and SQL are not (they run in Python
        before the graph, in training and in serving alike)."""
        out: dict[str, tuple[str, ...]] = {f"{name}{steps.SEP}freq": ("frequency", name) for name in self.frequencies}
        out |= {steps.interaction_name(a, op, b): (op, a, b) for a, op, b, _ in self.interactions}
        return out

    def without_graph_steps(self) -> FeaturePipeline:
        """This pipeline less the steps an ONNX graph computes (`graph_steps`): what runs
        before such a graph."""
        return replace(self, frequencies={}, interactions=(), fitted_version=self.lineage_version)

    @property
    def lineage_version(self) -> str:
        """The recorded version this pipeline is, or was cut from."""
        return self.fitted_version or self.version

    def pruned(self, configs: list[dict[str, Any]]) -> FeaturePipeline:
        """This pipeline cut down to the groups `configs` read (one model, or an ensemble's
        members): the interactions and text components they use, cycles only if one uses
        them. A served model then computes only what it reads."""
        cycles = self.cycles and any(c.get(CYCLIC_PARAM, True) for c in configs)
        n_pairs = max(int(c.get(INTERACTIONS_PARAM, 0)) for c in configs)
        n_text = max(int(c.get(TEXT_PARAM, TEXT_ALL)) for c in configs)
        texts = {name: state | {"components": state["components"][:n_text]} for name, state in self.texts.items()}
        embedded = any(c.get(EMBEDDING_PARAM, False) for c in configs)
        return replace(
            self,
            cycles=cycles,
            interactions=self.interactions[:n_pairs],
            texts=texts,
            embeddings=self.embeddings if embedded else {},
            fitted_version=self.lineage_version,
        )

    def packages(self) -> tuple[str, ...]:
        """The distributions computing these features needs beyond pandas, NumPy and
        scikit-learn, wherever they are computed (a served model included)."""
        return embeddings.SERVING_DISTRIBUTIONS if self.embeddings else ()

    def text_columns(self, n: int | None = None) -> tuple[str, ...]:
        """Each text column's first `n` components (None: all)."""
        out = []
        for name, state in self.texts.items():
            k = len(state["components"]) if n is None else min(n, len(state["components"]))
            out += [f"{name}{steps.SEP}svd{i}" for i in range(k)]
        return tuple(out)

    def embedding_columns(self) -> tuple[str, ...]:
        return tuple(c for name, state in self.embeddings.items() for c in embeddings.embedding_columns(name, state))

    def interaction_columns(self, n: int | None = None) -> tuple[str, ...]:
        chosen = self.interactions if n is None else self.interactions[:n]
        return tuple(steps.interaction_name(a, op, b) for a, op, b, _ in chosen)

    @property
    def high_cardinality(self) -> tuple[str, ...]:
        return tuple(self.frequencies)

    def unused_columns(self, config: dict[str, Any]) -> set[str]:
        """Derived or categorical columns that configuration `config` leaves out of its model."""
        unused: set[str] = set()
        if not config.get(CYCLIC_PARAM, True):
            unused |= set(self.cyclic_columns)
        n_text = config.get(TEXT_PARAM)
        if n_text is not None:
            unused |= set(self.text_columns()) - set(self.text_columns(int(n_text)))
        # interactions are opt-in (a space without the parameter uses none); the other groups opt-out
        n_pairs = int(config.get(INTERACTIONS_PARAM, 0))
        unused |= set(self.interaction_columns()) - set(self.interaction_columns(n_pairs))
        if config.get(HIGH_CARDINALITY_PARAM, "frequency") == "frequency":
            unused |= set(self.high_cardinality)
        if not config.get(EMBEDDING_PARAM, False):  # opt-in, like interactions
            unused |= set(self.embedding_columns())
        return unused

    def target_encoded(self, config: dict[str, Any]) -> tuple[str, ...]:
        """High-cardinality columns the configuration target-encodes."""
        return self.high_cardinality if config.get(HIGH_CARDINALITY_PARAM) == "target" else ()

    def search_params(self, task_type: str) -> list[dict[str, Any]]:
        """The search-space parameters of this pipeline's feature groups (none when it has none)."""
        params: list[dict[str, Any]] = []
        if self.datetimes:
            params.append({"name": CYCLIC_PARAM, "type": "bool", "range": [False, True], "default": True})
        if self.texts:
            most = max(len(s["components"]) for s in self.texts.values())
            choices = sorted({0, min(4, most), most})
            params.append({"name": TEXT_PARAM, "type": "int_cat", "range": choices, "default": most})
        if self.embeddings:
            params.append({"name": EMBEDDING_PARAM, "type": "bool", "range": [False, True], "default": False})
        if self.interactions:
            # bounded: there are no more screened interactions to widen the range to
            params.append(
                {
                    "name": INTERACTIONS_PARAM,
                    "type": "int",
                    "range": [0, len(self.interactions)],
                    "default": 0,
                    "bounded": True,
                }
            )
        if self.frequencies:
            # scikit-learn's TargetEncoder converts to ONNX for binary and continuous targets only
            choices = [c for c in HIGH_CARDINALITY_CHOICES if c != "target" or task_type != "multiclass"]
            params.append({"name": HIGH_CARDINALITY_PARAM, "type": "string", "range": choices, "default": "frequency"})
        return params

    # --- as an asset -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["memo_dir"]
        if not self.embeddings:
            del out["embeddings"]  # the state (and version) of a pipeline without them is as before
        out["sql_steps"] = [s.to_dict() for s in self.sql_steps]
        out["interactions"] = [list(i) for i in self.interactions]
        out["roles"] = list(self.roles)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePipeline:
        return cls(
            inputs=dict(data["inputs"]),
            sql_steps=tuple(SqlStep(**s) for s in data.get("sql_steps", ())),
            roles=tuple(data.get("roles", ())),
            excluded=tuple(data.get("excluded", ())),
            kept=tuple(data.get("kept", ())),
            datetimes=dict(data.get("datetimes", {})),
            frequencies=dict(data.get("frequencies", {})),
            texts=dict(data.get("texts", {})),
            embeddings=dict(data.get("embeddings", {})),
            interactions=tuple((a, op, b, float(g)) for a, op, b, g in data.get("interactions", ())),
            cycles=bool(data.get("cycles", True)),
            fitted_version=str(data.get("fitted_version", "")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())  # insertion order is column order: not sorted

    @property
    def version(self) -> str:
        """The content hash: the same fitted pipeline always has the same version."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def describe(self) -> list[str]:
        """What the pipeline does, one line per step, for logs and the advisor."""
        lines = [f"SQL step {s.name!r} adds columns" for s in self.sql_steps]
        lines += [
            f"left out {r['column']!r}: {r['role']} ({r['why']})" for r in self.roles if r["column"] in self.excluded
        ]
        lines += [f"kept {c!r} although it was flagged (the form says so)" for c in self.kept]
        lines += [f"datetime {c!r}: calendar parts, days since 1970, cycles" for c in self.datetimes]
        lines += [f"high-cardinality {c!r}: frequency, codes or target encoding" for c in self.frequencies]
        lines += [f"text {c!r}: TF-IDF -> {len(s['components'])} SVD components" for c, s in self.texts.items()]
        lines += [
            f"text {c!r}: {s['model']} sentence vectors -> {len(s['components'])} PCA components"
            for c, s in self.embeddings.items()
        ]
        lines += [f"interaction {steps.interaction_name(a, op, b)} (gain {g:.3f})" for a, op, b, g in self.interactions]
        return lines


def _cyclic_names(name: str) -> list[str]:
    parts = ("month", "dayofweek", "dayofyear", "hour")
    return [f"{name}{steps.SEP}{p}_{f}" for p in parts for f in ("sin", "cos")]


def fit_feature_pipeline(
    frame: pd.DataFrame,
    target: str,
    task_type: str,
    fit_rows: np.ndarray,
    *,
    sql_steps: tuple[SqlStep, ...] = (),
    keep: tuple[str, ...] = (),
    automatic: bool = True,
    embed_text: bool = False,
    seed: int = 0,
) -> FeaturePipeline:
    """Fit a feature pipeline on `frame`'s `fit_rows` (the rows the search may see).

    `keep`: flagged columns to keep anyway; `automatic`: False leaves datetime and text
    columns as categories and adds no derived feature (the SQL steps and the exclusion of
    flagged columns still apply); `embed_text`: text columns also get sentence vectors
    (`features.embeddings`), which the search may choose instead of or beside TF-IDF."""
    unknown = [c for c in keep if c not in frame.columns or c == target]
    if unknown:
        raise FeaturePipelineError(f"keep_columns names {unknown}, which are not feature columns of the table")
    rows = frame.iloc[np.sort(np.asarray(fit_rows))]  # in table order: "monotone with the row order" reads it
    raw_roles = column_roles(rows, target, task_type)
    excluded = [r.column for r in raw_roles if r.excluded and r.column not in keep]
    inputs = {
        c: NUMBER_INPUT if _is_number(frame[c]) else VALUE_INPUT
        for c in frame.columns
        if c != target and c not in excluded
    }
    current = FeaturePipeline(inputs=inputs).typed_inputs(rows)
    for step in sql_steps:
        check_sql_step(current, step)
        current = pd.concat([current, run_sql_step(current, step)], axis=1)
    sql_columns = [c for c in current.columns if c not in inputs]  # roles of the SQL steps' columns only
    derived_roles = column_roles(pd.concat([current[sql_columns], rows[[target]]], axis=1), target, task_type)
    excluded += [r.column for r in derived_roles if r.excluded and r.column not in keep]
    roles: list[ColumnRole] = [*raw_roles, *derived_roles]
    summary = roles_summary(roles, tuple(c for c in keep if any(r.column == c and r.excluded for r in roles)))
    by_role = {r.column: r.role for r in roles if r.column not in excluded}
    pipeline = FeaturePipeline(
        inputs=inputs,
        sql_steps=tuple(sql_steps),
        roles=tuple(summary["columns"]),
        excluded=tuple(excluded),
        kept=tuple(summary["kept"]),
    )
    if not automatic:
        return pipeline
    datetimes = {c: _format_of(current[c]) for c, role in by_role.items() if role == DATETIME}
    frequencies = {c: steps.fit_frequencies(current[c]) for c, role in by_role.items() if role == HIGH_CARDINALITY}
    texts = {c: steps.fit_text(current[c], seed=seed) for c, role in by_role.items() if role == TEXT}
    embedded = {c: embeddings.fit_embedding(current[c]) for c in texts} if embed_text else {}
    numeric = [c for c, role in by_role.items() if role == "numeric" and _is_number(current[c])]
    y = rows[target].to_numpy()
    if task_type != "regression":
        y = pd.factorize(y)[0]
    pairs = steps.screen_interactions(current[numeric], y, task_type, seed=seed) if numeric else []
    fitted = replace(
        pipeline,
        datetimes=datetimes,
        frequencies=frequencies,
        texts=texts,
        embeddings=embedded,
        interactions=tuple(pairs),
    )
    for line in fitted.describe():
        log.info("feature pipeline: %s", line)
    return fitted


def _is_number(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _format_of(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return ""
    return datetime_format(series) or ""
