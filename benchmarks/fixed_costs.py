"""Fixed costs of a NoCode run outside the search, each against the way it was done before
(issue #11: wall time of budget + 20 s on small tables), side by side in one process.

- ingest validation: Great Expectations' suite stored once with every expectation
  (`data/validation.failed_rules`) against one `suite.add_expectation` per rule, which stores
  the whole suite again each time, on tables of 15, 75 and 200 columns;
- the refit check's bootstrap: 300 ROC AUCs of resampled test rows in numpy
  (`families/refit_check.bootstrap_scores`) against scikit-learn's `roc_auc_score`.

Run: PYTHONPATH=. .venv/bin/python benchmarks/fixed_costs.py
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd

COLUMNS = (15, 75, 200)
ROWS = 2000
REPEATS = 3


def _per_rule_suite(frame: pd.DataFrame, rules: list) -> None:
    """The validation as it was: the suite stored again for each expectation added."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("loopml").add_dataframe_asset("t").add_batch_definition_whole_dataframe("w")
    suite = context.suites.add(gx.ExpectationSuite(name="loopml_ingest"))
    for _, expectation in rules:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
    definition.run(batch_parameters={"dataframe": frame})


def _best_of(step) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def validation() -> None:
    from automl_tasks.data.validation import _quiet_great_expectations, _rules, failed_rules

    _quiet_great_expectations()
    rng = np.random.default_rng(0)
    print("| columns | one suite write s | one write per rule s (before) | speed-up |")
    print("|---|---|---|---|")
    for n in COLUMNS:
        frame = pd.DataFrame(rng.normal(size=(ROWS, n - 1)), columns=[f"x{i}" for i in range(n - 1)])
        frame["target"] = rng.integers(0, 2, ROWS)
        # new expectation objects for every run: adding one to a suite gives it an id
        once = _best_of(lambda frame=frame: failed_rules(frame, _rules(frame, "target", "binary")))
        per_rule = _best_of(lambda frame=frame: _per_rule_suite(frame, _rules(frame, "target", "binary")))
        print(f"| {n} | {once:.2f} | {per_rule:.2f} | {per_rule / once:.1f}x |")


def bootstrap() -> None:
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.families.refit_check import BOOTSTRAP_SAMPLES, bootstrap_scores

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 713)  # credit_data's test rows
    positive = np.clip(truth * 0.3 + rng.random(713) * 0.7, 0, 1)
    proba = np.c_[1 - positive, positive]
    auc = Metric("roc_auc")
    classes = np.array([0, 1])
    numpy_s = _best_of(lambda: bootstrap_scores(auc, truth, proba, classes, samples=BOOTSTRAP_SAMPLES))

    def by_sklearn() -> None:
        draws = np.random.default_rng(0)
        for _ in range(BOOTSTRAP_SAMPLES):
            rows = draws.integers(0, len(truth), len(truth))
            auc(truth[rows], proba[rows], classes)

    sklearn_s = _best_of(by_sklearn)
    print(
        f"\nrefit check bootstrap, {BOOTSTRAP_SAMPLES} ROC AUCs of {len(truth)} rows: numpy {numpy_s:.3f} s, "
        f"scikit-learn {sklearn_s:.3f} s (before), {sklearn_s / numpy_s:.0f}x"
    )


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    validation()
    bootstrap()


if __name__ == "__main__":
    main()
