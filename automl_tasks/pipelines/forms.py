"""The trigger forms of loopml's DAGs as plain data: one home for every field's type,
default, limits, choices and help text.

Two sides read these specs. `operators/forms.py` turns them into the Airflow Params of
the DAG files (the form a person fills in, checked by Airflow when a run is triggered)
and the request classes of `pipelines/requests.py` validate with them (the check a run
applies, whoever started it). So the form and the checks cannot drift apart.

Airflow-free and cheap: DAG files import this module at parse time, so it imports no ML
library (the strategy registry is read through `automl_tasks.search.strategies`, which
imports only the search-space language).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from automl_tasks.core.errors import ConfigurationError

#: the JSON-schema types a field may have
JSON_TYPES = ("string", "integer", "number", "boolean", "null")

# with BUNDLED_TEXT_DATASETS = automl_tasks.data.bundled.BUNDLED
BUNDLED_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")
BUNDLED_TEXT_DATASETS = ("fine_foods",)
TASK_CHOICES = ("auto", "binary", "multiclass", "regression")
METRIC_CHOICES = ("auto", "roc_auc", "accuracy", "f1_macro", "log_loss", "r2", "rmse", "mae")
COMBINE_RULES = ("reference_plus_recent", "recent_only")
PROMOTION_ACTIONS = ("auto", "manual", "rollback")
#: the form's proposals for the deployment target: none, or a built-in target
#: (= automl_tasks.deploy.targets.BUILTIN_TARGETS); a workspace's deploy_targets.yaml may add more
DEPLOY_TARGET_PROPOSALS = ("", "cloud-cpu", "edge-cpu", "gpu", "auto-cpu")
MAX_TRIALS = 10_000
MAX_WORKERS = 16  # trials evaluated at once by one search (mapped worker tasks)
MAX_TIME_BUDGET_S = 7 * 86_400


@dataclass(frozen=True)
class Field:
    """One field of a trigger form: its JSON-schema rules plus how the form shows it.

    `required` marks a field the request classes have no default for: the form's
    `default` is only the value the form starts with. `further_check` says what the
    request classes check beyond these rules (a file that must exist, a name's syntax).
    """

    name: str
    type: str | tuple[str, ...]  # JSON-schema type(s); "null" in a tuple makes the field optional
    default: Any
    title: str
    description: str = ""
    section: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    enum: tuple[Any, ...] | None = None
    min_length: int | None = None
    examples: tuple[str, ...] = ()
    required: bool = False
    further_check: str = ""
    multiline: bool = False  # a text area in Airflow's form (JSON schema `format: multiline`)

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in JSON_TYPES]
        if unknown:
            raise ValueError(f"form field {self.name!r}: unknown JSON types {unknown}; expected some of {JSON_TYPES}")

    @property
    def types(self) -> tuple[str, ...]:
        return (self.type,) if isinstance(self.type, str) else self.type

    def but(self, **changes: Any) -> Field:
        """The same rules shown differently (title, description, section) or with a new default."""
        return replace(self, **changes)

    def optional(self, **changes: Any) -> Field:
        """This field as an override that may stay empty (None: keep what applies otherwise)."""
        enum = None if self.enum is None else (None, *self.enum)
        types = self.types if "null" in self.types else ("null", *self.types)
        return replace(self, type=types, default=None, enum=enum, required=False, **changes)

    def json_schema(self) -> dict[str, Any]:
        """The JSON-schema keywords of the field's rules (what Airflow's Param validates)."""
        schema: dict[str, Any] = {"type": self.type if isinstance(self.type, str) else list(self.type)}
        for key, value in (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("minLength", self.min_length),
        ):
            if value is not None:
                schema[key] = value
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.multiline:
            schema["format"] = "multiline"
        return schema

    def expected(self) -> str:
        """What a valid value is, in words: 'an integer in [1, 16]', "one of ['a', 'b']"."""
        if self.enum is not None:
            text = f"one of {list(self.enum)}"
        else:
            kinds = [t for t in self.types if t != "null"]
            noun = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false"}
            text = " or ".join(noun[t] for t in kinds)
            if self.min_length:
                text = "a non-empty string" if kinds == ["string"] and self.min_length == 1 else text
            if self.minimum is not None and self.maximum is not None:
                text += f" in [{self.minimum}, {self.maximum}]"
            elif self.minimum is not None:
                text += f" >= {self.minimum}"
            elif self.maximum is not None:
                text += f" <= {self.maximum}"
            if self.exclusive_minimum is not None:
                text += f" > {self.exclusive_minimum}"
        return text + (" (or empty)" if "null" in self.types else "")

    def accepts(self, value: Any) -> bool:
        """Whether `value` passes the field's rules (the JSON-schema meaning of them)."""
        if value is None:
            return "null" in self.types
        if not any(_is_type(value, t) for t in self.types):
            return False
        if self.enum is not None and value not in self.enum:
            return False
        if isinstance(value, str):
            return self.min_length is None or len(value) >= self.min_length
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (
                (self.minimum is None or value >= self.minimum)
                and (self.maximum is None or value <= self.maximum)
                and (self.exclusive_minimum is None or value > self.exclusive_minimum)
            )
        return True

    def check(self, value: Any) -> None:
        """Refuse a value the field does not accept, naming the field, the rule and the value."""
        if not self.accepts(value):
            raise ConfigurationError(f"The {self.name!r} parameter must be {self.expected()}. Got {value!r} instead.")


def _is_type(value: Any, json_type: str) -> bool:
    if json_type == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return {
        "string": isinstance(value, str),
        "integer": isinstance(value, int),
        "number": isinstance(value, int | float),
        "null": value is None,
    }[json_type]


@dataclass(frozen=True)
class Form:
    """The ordered fields of one DAG's trigger form."""

    dag_id: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"form {self.dag_id}: duplicate field names in {names}")

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __getitem__(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"form {self.dag_id} has no field {name!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def check(self, request: Any) -> None:
        """Check every field of the form that `request` has, by the form's rules."""
        for field in self.fields:
            if hasattr(request, field.name):
                field.check(getattr(request, field.name))

    def coerce(self, conf: dict[str, Any]) -> dict[str, Any]:
        """`conf` with whole numbers given as floats (5.0, as JSON clients send) made int for integer fields."""
        values = dict(conf)
        for field in self.fields:
            value = values.get(field.name)
            if "integer" in field.types and isinstance(value, float) and value.is_integer():
                values[field.name] = int(value)
        return values


def strategy_choices(*, fidelity: bool) -> tuple[str, ...]:
    """'auto' and the registered single-objective strategies; those that need intermediate
    rewards (Hyperband, ASHA) only where the algorithm may report them."""
    from automl_tasks.search.strategies import STRATEGIES

    names = (n for n, s in STRATEGIES.items() if not s.multi_objective and (fidelity or not s.needs_fidelity))
    return ("auto", *names)


# ---- the fields shared by several forms -----------------------------------------------

DATASET = Field(
    "dataset",
    "string",
    "breast_cancer",
    "Dataset",
    f"A bundled dataset ({', '.join(BUNDLED_DATASETS)}), the path of a CSV/Parquet file, or a stored "
    "dataset version (dataset://NAME@VERSION, as an earlier run's MLflow run shows it).",
    "Data",
    min_length=1,
    examples=BUNDLED_DATASETS,
    further_check="a bundled name, an existing CSV/Parquet file or a stored dataset version",
)
TARGET = Field("target", "string", "target", "Target column", section="Data", min_length=1)
TASK_TYPE = Field(
    "task_type", "string", "auto", "Task type", "'auto' infers it from the target column.", "Data", enum=TASK_CHOICES
)
METRIC = Field(
    "metric",
    "string",
    "auto",
    "Metric",
    "'auto': ROC AUC (binary), accuracy (multiclass), R2 (regression). Its direction follows from it "
    "(log_loss, rmse, mae are minimised).",
    "Search",
    enum=METRIC_CHOICES,
)
N_TRIALS = Field(
    "n_trials",
    "integer",
    20,
    "Trial budget",
    "Number of configurations to try; 0 lets loopml choose it from the data size (or the grid's size).",
    "Search",
    minimum=0,
    maximum=MAX_TRIALS,
)
N_WORKERS = Field(
    "n_workers",
    "integer",
    2,
    "Workers",
    "Trials evaluated at the same time.",
    "Search",
    minimum=1,
    maximum=MAX_WORKERS,
)
TIME_BUDGET_S = Field(
    "time_budget_s",
    "integer",
    600,
    "Time budget (seconds)",
    "No new trial starts after this.",
    "Search",
    minimum=10,
    maximum=MAX_TIME_BUDGET_S,
)
SEARCH_SPACE = Field(
    "search_space",
    "string",
    "",
    "Search space (YAML, optional)",
    "Leave empty for the default tabular space.",
    "Search",
    further_check="valid search-space YAML (or a path to it)",
    multiline=True,
)
WARM_START_STUDY = Field(
    "warm_start_study",
    "string",
    "",
    "Warm start from study",
    "Empty: none. An earlier run's Optuna study: its best configurations that fit this search space are "
    "tried first (the Advisor page's re-run sets it).",
    "Search",
    further_check="an existing study of the same model family",
)
# feature pipelines (issue #15)
_FEATURES = "Features"
AUTO_FEATURES = Field(
    "auto_features",
    "boolean",
    True,
    "Automatic feature steps",
    "Datetime parts and cycles, frequency and target encoding of high-cardinality categories, TF-IDF "
    "components of text columns, and screened numeric interactions; the search chooses which to use. "
    "Off: dates and texts are plain categories.",
    _FEATURES,
)
TEXT_EMBEDDINGS = Field(
    "text_embeddings",
    "boolean",
    False,
    "Sentence embeddings of text columns",
    "Also encode free-text columns with the packaged all-MiniLM-L6-v2 (16 principal components of its sentence "
    "vectors); the search chooses them, TF-IDF or both. Encoding costs about 3 ms a short text and 20 ms a "
    "75-word review on 2 CPU cores, once per run for the table and again for each served request's texts. "
    "Needs the automatic feature steps.",
    _FEATURES,
)
SQL_FEATURES = Field(
    "sql_features",
    "string",
    "",
    "SQL feature steps (YAML, optional)",
    "A list of {name, sql}: each a DuckDB SELECT over the table `input` whose new columns become features, "
    "e.g. `- {name: per_room, sql: 'SELECT rooms / NULLIF(people, 0) AS per_room FROM input'}`. One row per "
    "input row, each row on its own (serving runs it on the request's rows); no files, network or extensions.",
    _FEATURES,
    further_check="YAML list of {name, sql}; each step runs on a sample before the search starts",
    multiline=True,
)
KEEP_COLUMNS = Field(
    "keep_columns",
    "string",
    "",
    "Keep flagged columns",
    "Comma-separated columns to train on although column understanding flags them (identifier, constant, "
    "target leak); the profile and the advisor list what was left out and why.",
    _FEATURES,
    further_check="columns of the table",
)
FEATURE_PIPELINE = Field(
    "feature_pipeline",
    "string",
    "",
    "Feature pipeline version",
    "Empty: fit a new one on this table. A recorded version (the loopml.feature_pipeline tag of a model "
    "version): reuse it as it is.",
    _FEATURES,
    further_check="a recorded feature pipeline version",
)
FEATURE_FIELDS = (AUTO_FEATURES, TEXT_EMBEDDINGS, SQL_FEATURES, KEEP_COLUMNS, FEATURE_PIPELINE)

_FAMILY_NAME = "a model family name: letters, digits, '_', '.', '-'"
FAMILY_OPTIONAL = Field(
    "family",
    "string",
    "",
    "Model family",
    "Registered model name; empty = the dataset name.",
    "Registry",
    further_check=_FAMILY_NAME,
)
FAMILY = Field(
    "family", "string", "breast_cancer", "Model family", section="Data", min_length=1, further_check=_FAMILY_NAME
)
SEED = Field("seed", "integer", 0, "Seed", section="Search", minimum=0)
COMBINE = Field(
    "combine",
    "string",
    "reference_plus_recent",
    "Retraining data",
    "The champion's training data plus the recent rows, or the recent rows alone.",
    "Data",
    enum=COMBINE_RULES,
)
# the deployment goal (issue #12): measured on a target, with a latency budget or a trade-off
_DEPLOYMENT = "Deployment"
DEPLOY_TARGET = Field(
    "deploy_target",
    "string",
    "",
    "Deployment target",
    "Empty: none. A built-in target (cloud-cpu: ONNX Runtime, all cores; edge-cpu: OpenVINO, one core; gpu: "
    "TensorRT FP16; auto-cpu: the fastest engine measured here, one core) or one defined in the workspace's deploy_targets.yaml. Each trial's model is exported to "
    "ONNX and its latency measured on the target's engine.",
    _DEPLOYMENT,
    examples=DEPLOY_TARGET_PROPOSALS,
    further_check="a known deployment target whose engine can run on this machine",
)
LATENCY_BUDGET_MS = Field(
    "latency_budget_ms",
    "number",
    0,
    "Latency budget (ms, batch 1)",
    "0 = none. A trial whose model is slower than this on the target is infeasible: recorded, never chosen.",
    _DEPLOYMENT,
    minimum=0,
    further_check="a deployment target to measure on",
)
TRADE_OFF_LATENCY = Field(
    "trade_off_latency",
    "boolean",
    False,
    "Trade off latency",
    "Search two objectives (score, latency on the target); the advisor logs the Pareto front and the "
    "chosen model is the best score within the budget.",
    _DEPLOYMENT,
    further_check="a deployment target, and a strategy that handles two objectives",
)
ENSEMBLE = Field(
    "ensemble",
    "boolean",
    True,
    "Ensemble the best trials",
    "Register a weighted ensemble of the best trials (Caruana's ensemble selection) when it scores better "
    "than the best trial alone; off: always one model (lower latency). No ensemble is built when a "
    "deployment target is set: latency was measured per model.",
    _DEPLOYMENT,
)
DEPLOYMENT_FIELDS = (DEPLOY_TARGET, LATENCY_BUDGET_MS, TRADE_OFF_LATENCY, ENSEMBLE)

# trust reports and differential privacy (issue #17)
_TRUST = "Trust"
TRUST_REPORT = Field(
    "trust_report",
    "boolean",
    True,
    "Trust report",
    "Measure the registered model's robustness to noise and to an adversarial attack, and how much a "
    "membership-inference attack learns about its training rows; MLflow model metrics and a plot. The promotion "
    "gate can require thresholds on them (promote_model form).",
    _TRUST,
)
DP_EPSILON = Field(
    "dp_epsilon",
    "number",
    0,
    "Differential privacy epsilon",
    "0 = off. Else every model is the torch MLP trained with DP-SGD (Opacus) spending this epsilon (delta = "
    "1/(10 rows), at most 1e-5); the version records the accountant's final epsilon. Smaller is more private and "
    "less accurate (1 strong, 8 weak). Tree models have no DP option; the preprocessing and the choice among "
    "trials are not covered by the epsilon.",
    _TRUST,
    minimum=0,
    maximum=100,
)
TRUST_FIELDS = (TRUST_REPORT, DP_EPSILON)

# the promotion gate's knobs (defaults = automl_tasks.families.promotion.GateConfig's)
MARGIN = Field("margin", "number", 0.0, "Promotion margin", section="Registry", minimum=0)
MAX_LATENCY_RATIO = Field("max_latency_ratio", "number", 1.5, "Allowed latency ratio", section="Registry", minimum=1)
MAX_SIZE_RATIO = Field("max_size_ratio", "number", 2.0, "Allowed model size ratio", section="Registry", minimum=1)
# the gate's trust thresholds (issue #17; 0 = off), read from versions' trust reports
MAX_ATTACK_AUC = Field(
    "max_attack_auc",
    "number",
    0.0,
    "Highest membership-attack AUC",
    "0 = no threshold. Else in [0.5, 1]: a version whose membership-inference attack AUC (0.5 = no leak) is higher, "
    "or that has no trust report, is not promoted.",
    _TRUST,
    minimum=0,
    maximum=1,
)
MIN_ROBUST_ACCURACY = Field(
    "min_robust_accuracy",
    "number",
    0.0,
    "Lowest accuracy under attack",
    "0 = no threshold. A classifier whose accuracy under the trust report's adversarial attack is lower is not "
    "promoted.",
    _TRUST,
    minimum=0,
    maximum=1,
)
MAX_DP_EPSILON = Field(
    "max_dp_epsilon",
    "number",
    0.0,
    "Highest differential-privacy epsilon",
    "0 = no threshold. Else only versions trained with DP-SGD at this epsilon or less are promoted.",
    _TRUST,
    minimum=0,
)
SAVE_GATE = Field(
    "save_gate",
    "boolean",
    False,
    "Make this the family's gate",
    "Store these settings on the family: every later automatic promotion (NoCode, HPO, drift_retrain) applies "
    "them, and its trust thresholds hold whatever form asks for the promotion.",
    _TRUST,
)
TRUST_GATE_FIELDS = (MAX_ATTACK_AUC, MIN_ROBUST_ACCURACY, MAX_DP_EPSILON, SAVE_GATE)

# ---- the forms --------------------------------------------------------------------------

NOCODE_FORM = Form(
    "nocode_pipeline",
    (
        DATASET.but(required=True),
        TARGET,
        TASK_TYPE,
        METRIC,
        N_TRIALS,
        N_WORKERS,
        TIME_BUDGET_S,
        SEARCH_SPACE,
        WARM_START_STUDY,
        FAMILY_OPTIONAL,
        SEED,
        Field(
            "strategy",
            "string",
            "auto",
            "Search strategy",
            "'auto': the formatter picks one from the space, budget and data size, and says why in the "
            "plan_search log.",
            "Search",
            enum=strategy_choices(fidelity=False),
        ),
        *DEPLOYMENT_FIELDS,
        *FEATURE_FIELDS,
        *TRUST_FIELDS,
    ),
)

HPO_FORM = Form(
    "hpo_pipeline",
    (
        Field(
            "algorithm",
            "string",
            "tabular",
            "Algorithm",
            "A built-in or registered algorithm (tabular, digits_cnn, ...) or a folder with algorithm.yaml.",
            "Algorithm",
            min_length=1,
        ),
        DATASET,
        TARGET,
        TASK_TYPE,
        METRIC,
        Field(
            "strategy",
            "string",
            "auto",
            "Search strategy",
            "'auto': the formatter picks one from the space, budget, data size and the algorithm's fidelity.",
            "Search",
            enum=strategy_choices(fidelity=True),
        ),
        N_TRIALS.but(section="Budget"),
        TIME_BUDGET_S.but(section="Budget"),
        Field(
            "max_epochs",
            "integer",
            0,
            "Fidelity budget (epochs per trial)",
            "For algorithms with a fidelity; 0 = each configuration's own.",
            "Budget",
            minimum=0,
        ),
        N_WORKERS.but(section="Budget"),
        Field("repeats", "integer", 3, "Split seeds for search vs default", section="Search", minimum=2, maximum=20),
        FAMILY_OPTIONAL,
        SEED,
        *DEPLOYMENT_FIELDS,
        TRUST_REPORT,
        DP_EPSILON.but(
            description="0 = off. Else every branch trains with DP-SGD (Opacus) spending this epsilon: the tabular "
            "algorithm's torch MLP alone, or an algorithm whose space declares a dp_epsilon parameter (digits_cnn). "
            "An algorithm with neither is refused."
        ),
    ),
)

#: the adaptation methods and miniaturisation steps (= automl_tasks.adaptation.methods.METHODS
#: and automl_tasks.adaptation.miniaturise.STEPS)
ADAPTATION_METHODS = ("lora", "prompt", "adapter", "head", "full")
MINIATURISE_STEPS = ("distill", "prune", "quantise")
ADAPTATION_FORM = Form(
    "large_model_adaptation",
    (
        DATASET.but(
            description="A CSV/Parquet file of texts with a label column, or the bundled fine_foods reviews.",
            examples=BUNDLED_TEXT_DATASETS,
            default="fine_foods",
            required=True,
        ),
        Field("text_column", "string", "review", "Text column", section="Data", min_length=1),
        TARGET.but(default="score", title="Label column"),
        Field(
            "base_model",
            "string",
            "all-MiniLM-L6-v2",
            "Base model",
            "all-MiniLM-L6-v2 (installed with loopml, offline) or the folder of a local Hugging Face model.",
            "Model",
            min_length=1,
            further_check="the packaged model or a folder with config.json, weights and a tokenizer",
        ),
        Field(
            "methods",
            "string",
            ",".join(ADAPTATION_METHODS),
            "Adaptation methods",
            "Comma-separated, from " + ", ".join(ADAPTATION_METHODS) + " (adapter = (IA)^3; head = frozen encoder "
            "with a trained head; full = full fine-tuning). The method is the root of the search space.",
            "Model",
            min_length=1,
            further_check="a comma-separated list of known methods",
        ),
        Field(
            "miniaturise",
            "string",
            ",".join(MINIATURISE_STEPS),
            "Miniaturisation steps",
            "Comma-separated, from " + ", ".join(MINIATURISE_STEPS) + "; 'none' for none. Each derived model "
            "is a new version of the family, measured on the target.",
            "Model",
            min_length=1,
            further_check="a comma-separated list of known steps, or none",
        ),
        DEPLOY_TARGET.but(
            default="cloud-cpu",
            description="Where the candidates are compiled and timed: a built-in target (cloud-cpu, edge-cpu, gpu, "
            "auto-cpu) or one of the workspace's deploy_targets.yaml.",
            min_length=1,
        ),
        LATENCY_BUDGET_MS.but(
            description="0 = none. The champion is the most accurate candidate whose p50 batch-1 latency on the "
            "target is within this budget; if none is, nothing is promoted."
        ),
        Field(
            "strategy",
            "string",
            "auto",
            "Search strategy",
            "'auto': the formatter picks one; epochs are the fidelity, so ASHA/Hyperband may stop poor trials.",
            "Search",
            enum=strategy_choices(fidelity=True),
        ),
        N_TRIALS.but(default=8, minimum=1, section="Budget", description="Number of configurations to try."),
        TIME_BUDGET_S.but(default=900, section="Budget"),
        Field(
            "max_epochs",
            "integer",
            0,
            "Fidelity budget (epochs per trial)",
            "0 = each configuration's own.",
            "Budget",
            minimum=0,
        ),
        N_WORKERS.but(default=1, section="Budget", description="Trials trained at once (each uses every core)."),
        FAMILY_OPTIONAL,
        SEED,
        TRUST_REPORT.but(
            description="Measure the adapted model's robustness to token noise and to PGD on its token embeddings, "
            "and how much a membership-inference attack learns about its training texts."
        ),
    ),
)

RETRAIN_N_TRIALS = N_TRIALS.but(default=10, minimum=1, description="")
RETRAIN_FORM = Form(
    "drift_retrain",
    (
        FAMILY.but(required=True),
        Field(
            "window_uri",
            "string",
            "",
            "Recent window (dataset URI)",
            "Filled by drift_check. Leave empty when giving a data file.",
            "Data",
        ),
        Field(
            "data_path",
            "string",
            "",
            "Recent labelled data file",
            "CSV/Parquet with the champion's columns and the target.",
            "Data",
            further_check="an existing file",
        ),
        COMBINE,
        Field(
            "eval_fraction",
            "number",
            0.3,
            "Held-out share of recent rows",
            "Becomes the family's evaluation data; champion and challenger are compared on it.",
            "Data",
            minimum=0.05,
            maximum=0.8,
        ),
        RETRAIN_N_TRIALS,
        N_WORKERS,
        TIME_BUDGET_S.but(description=""),
        SEARCH_SPACE.but(description="Empty: the champion's search space, warm-started from its study."),
        MARGIN,
        MAX_LATENCY_RATIO,
        MAX_SIZE_RATIO,
        MAX_ATTACK_AUC,
        MIN_ROBUST_ACCURACY,
        MAX_DP_EPSILON,
        SEED,
        Field("reason", "string", "", "Reason", "Why this retrain runs.", "Registry"),
        FEATURE_PIPELINE.but(
            description="Empty: the champion's feature pipeline, as it is. 'new': fit a new one on the "
            "retraining table. A recorded version: reuse that one."
        ),
    ),
)

#: drift_check form fields passed on to drift_retrain (empty = drift_retrain's default)
RETRAIN_OVERRIDES = (
    "n_trials",
    "n_workers",
    "time_budget_s",
    "combine",
    "margin",
    "max_size_ratio",
    "max_latency_ratio",
)

_SCHEDULE, _THRESHOLDS, _RETRAINING = "Schedule (per family)", "Thresholds", "Retraining"
DRIFT_CHECK_FORM = Form(
    "drift_check",
    (
        FAMILY_OPTIONAL.but(
            description="Empty: every family whose check is enabled and due (what the schedule does).",
            section="What to check",
        ),
        Field(
            "data_path",
            "string",
            "",
            "New data file (optional)",
            "CSV/Parquet to compare with the training data instead of the serving inference log. "
            "A target column makes concept drift measurable.",
            "What to check",
        ),
        # drift settings (automl_tasks.monitoring.drift_settings); empty = the family's own
        Field("enabled", ("null", "boolean"), None, "Scheduled checks on", section=_SCHEDULE),
        Field(
            "check_every_hours",
            ("null", "number"),
            None,
            "Check every (hours)",
            "The hourly tick checks the family when this much time has passed. Default 24.",
            _SCHEDULE,
            minimum=1,
        ),
        Field(
            "window_hours",
            ("null", "number"),
            None,
            "Window (hours of inference log)",
            section=_THRESHOLDS,
            minimum=0.01,
        ),
        Field("min_rows", ("null", "integer"), None, "Minimum rows", section=_THRESHOLDS, minimum=1),
        Field(
            "drift_share",
            ("null", "number"),
            None,
            "Drifted-column share that means drift",
            "Default 0.3.",
            _THRESHOLDS,
            minimum=0.01,
            maximum=1,
        ),
        Field(
            "column_threshold",
            ("null", "number"),
            None,
            "Per-column test threshold",
            "Empty: Evidently's default for each test (p-value 0.05 or distance 0.1).",
            _THRESHOLDS,
            exclusive_minimum=0,
        ),
        Field(
            "performance_drop",
            ("null", "number"),
            None,
            "Metric drop that means concept drift",
            "Default 0.05.",
            _THRESHOLDS,
            minimum=0,
        ),
        Field(
            "method",
            ("null", "string"),
            None,
            "Drift test",
            "Which drift check measures it: 'evidently' (the default) or one an installed package "
            "adds (entry point group loopml.drift_checks).",
            _THRESHOLDS,
            min_length=1,
        ),
        Field("auto_retrain", ("null", "boolean"), None, "Retrain on drift", section=_RETRAINING),
        Field(
            "save_settings", "boolean", False, "Save the thresholds above as the family's settings", section=_THRESHOLDS
        ),
        # passed on to drift_retrain: its rules, empty allowed
        RETRAIN_N_TRIALS.optional(title="Retrain trial budget", section=_RETRAINING),
        N_WORKERS.optional(title="Retrain workers", description="", section=_RETRAINING),
        TIME_BUDGET_S.optional(title="Retrain time budget (s)", description="", section=_RETRAINING),
        COMBINE.optional(description="", section=_RETRAINING),
        MARGIN.optional(section=_RETRAINING),
        MAX_LATENCY_RATIO.optional(section=_RETRAINING),
        MAX_SIZE_RATIO.optional(section=_RETRAINING),
    ),
)

VERSION = Field(
    "version", ("string", "integer"), "champion", "Version", "A version number or an alias (champion, challenger)."
)

PROMOTE_FORM = Form(
    "promote_model",
    (
        FAMILY.but(section=""),
        VERSION.but(
            default="latest_challenger", description="A version number, or 'latest_challenger'. Ignored for rollback."
        ),
        Field("action", "string", "auto", "Action", enum=PROMOTION_ACTIONS),
        MARGIN.but(title="Required improvement (auto)", section=""),
        MAX_LATENCY_RATIO.but(title="Allowed latency ratio (auto)", section=""),
        MAX_SIZE_RATIO.but(title="Allowed model size ratio (auto)", section=""),
        *TRUST_GATE_FIELDS,
    ),
)

BATCH_INFERENCE_FORM = Form(
    "batch_inference",
    (
        FAMILY.but(section=""),
        Field(
            "dataset",
            "string",
            "breast_cancer",
            "Dataset",
            "dataset://NAME@VERSION, a bundled name or a CSV/Parquet path",
        ),
        Field("model", "string", "champion", "Model", "An alias or a version number"),
    ),
)

TRUST_REPORT_FORM = Form(
    "trust_report",
    (
        FAMILY.but(section=""),
        VERSION,
    ),
)

#: = automl_tasks.monitoring.active_learning.STRATEGIES
LABELLING_STRATEGIES = ("entropy", "margin", "random")

ACTIVE_LEARNING_FORM = Form(
    "active_learning",
    (
        FAMILY.but(section=""),
        Field(
            "pool",
            "string",
            "",
            "Rows to choose from",
            "Empty: the family's logged requests that have no label yet. Or dataset://NAME@VERSION, or a "
            "CSV/Parquet path, with the champion's columns.",
        ),
        Field("batch_size", "integer", 40, "Rows to label", minimum=1, maximum=1000),
        Field(
            "strategy",
            "string",
            "margin",
            "How to choose",
            "margin or entropy: the rows the champion is least sure of (margin saved the most labels in "
            "docs/BENCHMARKS.md); random: a uniform sample.",
            enum=LABELLING_STRATEGIES,
        ),
        Field(
            "diversity",
            "boolean",
            False,
            "Spread the batch",
            "Choose far-apart rows among the most uncertain, so a batch is not many copies of one confusing row.",
        ),
        SEED.but(section=""),
    ),
)

#: every DAG's form by dag_id
FORMS = {
    form.dag_id: form
    for form in (
        NOCODE_FORM,
        HPO_FORM,
        ADAPTATION_FORM,
        RETRAIN_FORM,
        DRIFT_CHECK_FORM,
        PROMOTE_FORM,
        BATCH_INFERENCE_FORM,
        ACTIVE_LEARNING_FORM,
        TRUST_REPORT_FORM,
    )
}
