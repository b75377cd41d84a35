"""The tabular estimator of a weighted ensemble of searched configurations (issue #11).

Its configuration names the members' configurations and their weights (chosen by
`ensemble_selection.greedy_weights` over the trials' fold predictions). Every member is
trained exactly as a single configuration would be (same rows, seed, early-stopped tree
count, taken from the trial rather than fitted again), on data read once, the members side
by side on the machine's cores; the fitted model is a `WeightedEnsemble`. So the refit check,
the all-rows refit, the export with its parity check and native fallback, the family
evaluation and the promotion gate treat it like any tabular version.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from automl_tasks.core.threads import map_in_threads
from automl_tasks.estimators.tabular import ALL_ROWS, TRAIN_VALID_ROWS, TabularEstimator
from automl_tasks.estimators.weighted_ensemble import WeightedEnsemble

#: keys of an ensemble's configuration
MEMBERS, WEIGHTS, FOLD_BEST_ITERATIONS = "members", "weights", "fold_best_iterations"


def ensemble_config(
    configs: Sequence[Mapping[str, Any]],
    weights: Sequence[float],
    fold_best_iterations: Sequence[Sequence[int] | None] | None = None,
) -> dict[str, Any]:
    """The `model_args` of an `EnsembleEstimator`. `fold_best_iterations`: per member, the
    early-stopped tree counts its trial found on the search folds (None: not early-stopped,
    or unknown), so the final fit does not fit those folds again."""
    known = list(fold_best_iterations) if fold_best_iterations is not None else [None] * len(configs)
    return {
        MEMBERS: [dict(c) for c in configs],
        WEIGHTS: [float(w) for w in weights],
        FOLD_BEST_ITERATIONS: [list(b) if b else None for b in known],
    }


class EnsembleEstimator(TabularEstimator):
    """model_args: {"members": [configuration, ...], "weights": [share, ...]}."""

    @property
    def weights(self) -> list[float]:
        return [float(w) for w in self.model_args[WEIGHTS]]

    def feature_configs(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.model_args[MEMBERS]]

    @property
    def early_stopping(self) -> bool:
        return False  # each member finds its own tree count

    def _member(self, config: Mapping[str, Any]) -> TabularEstimator:
        member = TabularEstimator(
            run_epochs=self.run_epochs,
            data=self.data,
            is_trainer=self.is_trainer,
            model_args=config,
            metric=self.metric,
        )
        member.schema_, member.features_, member.target_ = self.schema_, self.features_, self.target_
        member.splits_ = self.splits_
        return member

    def _train_loaded(self) -> None:
        """Train every member on the shared data; search mode also scores the ensemble of
        each fold's member models, the number ensemble selection reported."""
        self.folds_ = self._search_folds()
        known = self.model_args.get(FOLD_BEST_ITERATIONS) or [None] * len(self.model_args[MEMBERS])
        self.members_ = [self._member(config) for config in self.model_args[MEMBERS]]
        for member, bests in zip(self.members_, known, strict=True):
            member.known_fold_best_iterations = bests
        # side by side on the cores: an ensemble's members are fitted after the search, when they are free
        map_in_threads(TabularEstimator._train_loaded, self.members_)
        self.pipeline_ = WeightedEnsemble([m.pipeline_ for m in self.members_], self.weights)
        self.best_iteration_ = None
        if self.is_trainer:
            self.fit_rows_ = TRAIN_VALID_ROWS
            return
        per_fold = zip(*(member.fold_models_ for member in self.members_), strict=True)
        self.fold_models_ = [WeightedEnsemble(models, self.weights) for models in per_fold]
        self.fold_scores_ = [
            self._score_rows(model, rows) for model, (_, rows) in zip(self.fold_models_, self.folds_, strict=True)
        ]

    def refit_on_all_rows(self) -> EnsembleEstimator:
        """Every member refitted on all rows (`TabularEstimator.refit_on_all_rows`), same weights."""
        full = copy.copy(self)
        full.members_ = map_in_threads(TabularEstimator.refit_on_all_rows, self.members_)
        full.pipeline_ = WeightedEnsemble([m.pipeline_ for m in full.members_], self.weights)
        full.fit_rows_ = ALL_ROWS
        return full
