"""Does the default space's lower bound on LightGBM's `num_leaves` keep the search from
better models? (issue #11: on 7 of the quality benchmark's 11 tables the best LightGBM
trials of a 30 s search sat at the bound, 4 leaves.)

On the portfolio's tables (benchmarks/build_portfolio.py: none is a quality-benchmark
table, so what is decided here is judged there on tables it was not chosen from), each
table's `TOP` best of the portfolio's candidate configurations (the space's default and
random LightGBM configurations, scored by loopml's TabularEstimator with 5-fold
cross-validation) are scored again with every smaller leaf count in `LEAVES`, the rest of
the configuration unchanged. Prints, per table, the best score within the bound and with
the smaller trees, and the mean over tables of the difference.

    make bench-deps
    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/num_leaves_bound.py
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.build_portfolio import TABLES, candidates, cv_score, load

#: leaf counts below the space's bound, tried on each of the best configurations
LEAVES = (2, 3)
#: best configurations per table scored again with fewer leaves
TOP = 5
LEAVES_KEY = "model.lightgbm.num_leaves"


def main() -> None:
    from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space

    space = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    configs = candidates(space)
    gains = []
    for package, name, target, kind, drop in TABLES:
        started = time.time()
        frame, task = load(package, name, target, kind, drop)
        within = [cv_score(frame, task, c) for c in configs]
        top = np.argsort(within)[::-1][:TOP]
        smaller = {
            (int(i), leaves): cv_score(frame, task, {**configs[i], LEAVES_KEY: leaves})
            for i in top
            for leaves in LEAVES
        }
        (best_i, best_leaves), best_smaller = max(smaller.items(), key=lambda item: item[1])
        gains.append(best_smaller - max(within))
        print(
            f"{package}::{name} ({task}): best within the bound {max(within):.4f} "
            f"({configs[int(top[0])][LEAVES_KEY]} leaves); with {'/'.join(map(str, LEAVES))} leaves "
            f"{best_smaller:.4f} (candidate {best_i} at {best_leaves}, which scored {within[best_i]:.4f} "
            f"with {configs[best_i][LEAVES_KEY]}): {gains[-1]:+.4f} ({time.time() - started:.0f} s)",
            flush=True,
        )
    print(
        f"mean difference over {len(gains)} tables {np.mean(gains):+.4f}; smaller trees better on "
        f"{sum(g > 0 for g in gains)}, worse on {sum(g < 0 for g in gains)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
