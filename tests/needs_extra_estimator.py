"""A test algorithm that needs a package only some workers' environments (images) have:
`loopml_test_extra`, which no environment has unless a test puts it on the path."""

from __future__ import annotations

import loopml_test_extra  # noqa: F401  (the dependency some images lack)

from tests.sleepy_estimator import SleepyEstimator


class NeedsExtraEstimator(SleepyEstimator):
    """The sleepy test estimator, importable only where `loopml_test_extra` is installed."""
