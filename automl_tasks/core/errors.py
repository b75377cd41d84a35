"""loopml's exception tree.

`LoopmlError` is the base of every error loopml raises on purpose. `UserError` is the
part of it a user fixes: the request, the data, the algorithm or the state of the model
family they named cannot be used, and the message says what to change. Retrying cannot
help, so an Airflow task fails at once on a `UserError` (and only on one: any other
exception is a fault that Airflow may retry), and the CLI prints the message without a
traceback.

`TrialEnded` and its subclasses are not errors of the run: they say how one search
trial ended without a score (pruned by the strategy, or failed), and the search records
the trial accordingly.
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Base class of every loopml error."""


class UserError(LoopmlError):
    """Something the user gave or named cannot be used; the message says what to change."""


class InvalidValueError(UserError, ValueError):
    """A value from the user (a form field, a name, a label) is outside its allowed set or range.

    Also a `ValueError`, so callers that validate values keep catching it as one."""


class DataValidationError(UserError):
    """A dataset broke a validation rule; the message names file, column and rule."""

    def __init__(self, source: str, failures: list[str]) -> None:
        self.source = source
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(f"dataset {source!r} failed validation:\n{lines}")


class DatasetNotFoundError(UserError):
    """A dataset name or path that does not resolve to a readable table."""


class SearchSpaceError(UserError):
    """An invalid search-space document; the message carries the YAML path of the fault."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"search space error at {path}: {problem}")


class FeaturePipelineError(UserError):
    """A feature step (SQL or automatic) that cannot run; the message names the step."""


class ConfigurationError(UserError):
    """A pipeline parameter (trigger form value) that is out of its allowed range."""


class ExportError(LoopmlError):
    """A model could not be exported or its export disagrees with the native model."""


class BackendUnavailableError(LoopmlError):
    """A deployment engine (e.g. TensorRT without a GPU) cannot run here; the message says why."""


class TrialEnded(Exception):
    """A search trial ended without a score; the subclass says how the search records it."""


class TrialPruned(TrialEnded):
    """The search strategy stopped the trial on an intermediate reward (Optuna state PRUNED)."""


class TrialFailed(TrialEnded):
    """The trial's configuration could not be evaluated (Optuna state FAIL); the message is kept."""


class UnknownBackendError(UserError, KeyError):
    """A deployment engine name that no built-in or installed backend answers to."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
