"""loopml's exception tree: every error a user can act on derives from `LoopmlError`."""

from __future__ import annotations


class LoopmlError(Exception):
    """Base class of every loopml error."""


class DataValidationError(LoopmlError):
    """A dataset broke a validation rule; the message names file, column and rule."""

    def __init__(self, source: str, failures: list[str]) -> None:
        self.source = source
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(f"dataset {source!r} failed validation:\n{lines}")


class DatasetNotFoundError(LoopmlError):
    """A dataset name or path that does not resolve to a readable table."""


class SearchSpaceError(LoopmlError):
    """An invalid search-space document; the message carries the YAML path of the fault."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"search space error at {path}: {problem}")


class ConfigurationError(LoopmlError):
    """A pipeline parameter (trigger form value) that is out of its allowed range."""


class ExportError(LoopmlError):
    """A model could not be exported or its export disagrees with the native model."""


class BackendUnavailableError(LoopmlError):
    """A deployment engine (e.g. TensorRT without a GPU) cannot run here; the message says why."""


class UnknownBackendError(LoopmlError, KeyError):
    """A deployment engine name that no built-in or installed backend answers to."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
