"""Contract checks for loopml's extension points, shipped so contributors run them too.

Like scikit-learn's `check_estimator` and `optuna.testing`: each check is a plain
function that exercises a class (or an algorithm folder) the way loopml will, and raises
`AssertionError` with a message that says which rule was broken. loopml's own tests run
every check on every built-in and on one deliberately broken example.

    from automl_tasks.testing import check_estimator
    check_estimator(MyEstimator, model_args={"depth": 3})

One module per extension point; each imports its heavy dependencies when called.
"""

from automl_tasks.testing.algorithms import check_algorithm_spec
from automl_tasks.testing.backends import check_backend
from automl_tasks.testing.drift import check_drift_check
from automl_tasks.testing.estimators import check_estimator
from automl_tasks.testing.strategies import check_strategy

__all__ = ["check_algorithm_spec", "check_backend", "check_drift_check", "check_estimator", "check_strategy"]
