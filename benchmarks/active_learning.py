"""Active learning (issue #14): test accuracy against the number of labels, for loopml's
uncertainty sampling (entropy, margin, margin + diversity) and for random sampling, with the
same start set and 5 seeds, on a real public dataset (the UCI handwritten digits, bundled).

Each seed: a stratified 30% test split; a start set of 2 labelled rows per class; then rounds
of `--batch` rows chosen from the unlabelled pool by `automl_tasks.monitoring.active_learning.
choose_rows` (the function the active_learning DAG uses), labelled with the truth, and the
model refitted (logistic regression on standardised pixels). Printed: the mean accuracy at
several label counts, and how many labels each strategy needs to reach the accuracy random
sampling has at the largest budget (the labels saved for equal accuracy).

    PYTHONPATH=. .venv/bin/python benchmarks/active_learning.py [--seeds 5] [--batch 20] [--budget 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl_tasks.data.bundled import bundled_frame  # noqa: E402
from automl_tasks.monitoring.active_learning import choose_rows  # noqa: E402

STRATEGIES = {"random": ("random", False), "entropy": ("entropy", False), "margin": ("margin", False)}
STRATEGIES["margin + diversity"] = ("margin", True)


def curve(x, y, test_x, test_y, strategy: str, diversity: bool, seed: int, batch: int, budget: int) -> list[float]:
    """Test accuracy after each round, from the start set to `budget` labels."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    labelled = np.concatenate([rng.choice(np.flatnonzero(y == c), 2, replace=False) for c in np.unique(y)])
    accuracies = []
    while True:
        model = LogisticRegression(max_iter=2000).fit(x[labelled], y[labelled])
        accuracies.append(float((model.predict(test_x) == test_y).mean()))
        if len(labelled) >= budget:
            return accuracies
        pool = np.setdiff1d(np.arange(len(x)), labelled)
        proba = None if strategy == "random" else model.predict_proba(x[pool])
        picked = choose_rows(proba, x[pool], batch, strategy, diversity=diversity, seed=seed * 1000 + len(labelled))
        labelled = np.concatenate([labelled, pool[picked]])


def main() -> None:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--budget", type=int, default=300)
    args = parser.parse_args()
    frame = bundled_frame("digits")
    features, target = frame.drop(columns=["target"]).to_numpy(float), frame["target"].to_numpy()
    started = time.time()
    results: dict[str, np.ndarray] = {}
    for name, (strategy, diversity) in STRATEGIES.items():
        runs = []
        for seed in range(args.seeds):
            train_x, test_x, train_y, test_y = train_test_split(
                features, target, test_size=0.3, stratify=target, random_state=seed
            )
            scaler = StandardScaler().fit(train_x)
            runs.append(
                curve(
                    scaler.transform(train_x),
                    train_y,
                    scaler.transform(test_x),
                    test_y,
                    strategy,
                    diversity,
                    seed,
                    args.batch,
                    args.budget,
                )
            )
        results[name] = np.mean(runs, axis=0)
    start = 2 * len(np.unique(target))
    labels = [min(start + i * args.batch, args.budget) for i in range(len(results["random"]))]
    shown = [i for i, n in enumerate(labels) if n in (start, 60, 100, 140, 200, args.budget)]
    print(
        f"digits ({len(frame)} rows, 10 classes), {args.seeds} seeds, batches of {args.batch}, {time.time() - started:.0f} s"
    )
    print(
        f"{'strategy':<20}" + "".join(f"{labels[i]:>8}" for i in shown) + "   labels to reach random's final accuracy"
    )
    goal = results["random"][-1]
    for name, accuracy in results.items():
        reached = next((labels[i] for i, a in enumerate(accuracy) if a >= goal), None)
        saved = "" if reached is None else f"{reached} ({args.budget - reached} saved)"
        print(f"{name:<20}" + "".join(f"{accuracy[i]:>8.4f}" for i in shown) + f"   {saved or 'not reached'}")
    print(f"random sampling's accuracy at {args.budget} labels: {goal:.4f}")


if __name__ == "__main__":
    main()
