"""Drift-check settings: defaults, per-family overrides, and the check's trigger form.

A family's settings live as registered-model tags `loopml.drift.<name>` in MLflow, so a
scheduled check (no form) uses what was set for that family, and a manual check can
override any of them for one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from automl_tasks.core.errors import ConfigurationError, LoopmlError
from automl_tasks.core.tags import DRIFT_SETTING_PREFIX, LAST_CHECK_TAG, LAST_RESULT_TAG


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds and windows of one family's drift check."""

    enabled: bool = True  # scheduled checks look at this family
    check_every_hours: float = 24.0  # a scheduled tick checks the family when this much time has passed
    window_hours: float = 24.0  # current window: inference-log records of the last N hours
    min_rows: int = 100  # fewer rows in the window: not enough data, no verdict
    drift_share: float = 0.3  # data drift when at least this share of columns drifted
    column_threshold: float | None = None  # per-column test threshold; None = Evidently's default per test
    prediction_drift: bool = True  # a drifted prediction distribution counts as drift
    performance_drop: float = 0.05  # concept drift when the champion's metric falls by more than this
    min_labelled_rows: int = 30  # fewer labelled rows: performance is not judged
    max_rows: int = 100_000  # larger reference/current tables are sampled (seeded) to this many rows
    auto_retrain: bool = True  # drift triggers drift_retrain
    method: str = "evidently"  # the drift check that measures it (automl_tasks.monitoring.drift.drift_checks)

    def __post_init__(self) -> None:
        checks = {
            "check_every_hours": self.check_every_hours > 0,
            "window_hours": self.window_hours > 0,
            "min_rows": self.min_rows >= 1,
            "drift_share": 0 < self.drift_share <= 1,
            "column_threshold": self.column_threshold is None or self.column_threshold > 0,
            "performance_drop": self.performance_drop >= 0,
            "min_labelled_rows": self.min_labelled_rows >= 1,
            "max_rows": self.max_rows >= 100,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigurationError(f"drift setting {name!r} has an invalid value {getattr(self, name)!r}")
        if self.method != "evidently":  # the built-in needs no lookup (and no plugin scan)
            from automl_tasks.monitoring.drift import drift_checks

            known = drift_checks()
            if self.method not in known:
                raise ConfigurationError(f"drift setting 'method' must be one of {sorted(known)}; got {self.method!r}")

    @classmethod
    def parse(cls, values: dict[str, Any], *, source: str) -> DriftSettings:
        """Settings from strings or JSON values (tags, form); `source` names where they came from."""
        return cls(**parse_values(values, source=source))

    def merged(self, overrides: dict[str, Any], *, source: str) -> DriftSettings:
        """These settings with `overrides` applied (empty values keep the current ones)."""
        return replace(self, **parse_values(overrides, source=source))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_values(values: dict[str, Any], *, source: str) -> dict[str, Any]:
    """The given settings, typed; empty values are left out. Unknown names are refused."""
    known = {f.name: str(f.type) for f in fields(DriftSettings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(f"{source}: unknown drift settings {unknown}; known: {sorted(known)}")
    return {name: _coerce(name, raw, known[name], source) for name, raw in values.items() if raw not in (None, "")}


def _coerce(name: str, raw: Any, type_name: str, source: str) -> Any:
    text = str(raw).strip().lower()
    if type_name == "str":
        return str(raw).strip()
    if "bool" in type_name:
        if isinstance(raw, bool) or text in ("true", "1", "yes", "false", "0", "no"):
            return raw if isinstance(raw, bool) else text in ("true", "1", "yes")
    else:
        try:
            number = float(raw)
            if "int" not in type_name:
                return number
            if number.is_integer():
                return int(number)
        except (TypeError, ValueError):
            pass
    raise ConfigurationError(f"{source}: drift setting {name!r} must be of type {type_name}; got {raw!r}")


def family_settings(client: Any, family: str) -> DriftSettings:
    """The family's drift settings: defaults overridden by its `loopml.drift.*` tags."""
    tags = client.get_registered_model(family).tags
    values = {
        k[len(DRIFT_SETTING_PREFIX) :]: v
        for k, v in tags.items()
        if k.startswith(DRIFT_SETTING_PREFIX) and not _is_state(k)
    }
    return DriftSettings.parse(values, source=f"tags of model family {family!r}")


def save_family_settings(client: Any, family: str, values: dict[str, Any]) -> DriftSettings:
    """Validate `values` against the family's current settings, then store them as tags."""
    parsed = parse_values(values, source="drift settings")
    updated = family_settings(client, family).merged(values, source="drift settings")  # validates the whole
    for name, value in parsed.items():
        client.set_registered_model_tag(family, DRIFT_SETTING_PREFIX + name, str(value))
    return updated


#: tags under the prefix that record state, not settings: LAST_CHECK_TAG, LAST_RESULT_TAG (core.tags)


def _is_state(tag: str) -> bool:
    return tag in (LAST_CHECK_TAG, LAST_RESULT_TAG)


@dataclass(frozen=True)
class ChampionFamily:
    """A family with a champion, as the scheduled drift check sees it."""

    name: str
    settings: DriftSettings | None  # None when its tags do not parse (`error` says why)
    error: str
    last_check: float  # epoch seconds of its last check, 0 for never


def champion_families(client: Any) -> Iterator[ChampionFamily]:
    """Every registered family with a champion, with its drift settings and last check
    (shared by the scheduled check and `loopml status`)."""
    from automl_tasks.families.aliases import CHAMPION, current_alias_version

    for model in client.search_registered_models(max_results=1000):
        if not current_alias_version(client, model.name, CHAMPION):
            continue
        last = float(model.tags.get(LAST_CHECK_TAG, 0) or 0)
        try:
            yield ChampionFamily(model.name, family_settings(client, model.name), "", last)
        except LoopmlError as exc:
            yield ChampionFamily(model.name, None, str(exc), last)
