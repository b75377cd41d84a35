"""The Pareto gate's table: accuracy x latency on the target x size, the front, and the champion.

The champion is the most accurate candidate that meets the latency budget on the target
(ties: the faster one); with no budget, the most accurate. A candidate that failed to build
or to match its parity on the target cannot be chosen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """One model of the family as the gate sees it."""

    version: str
    derivation: str
    parent_version: str
    accuracy: float
    latency_ms: float  # p50 at batch 1 on the target (inf when it did not build)
    size_kb: float
    deployable: bool
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """The deployable candidates no other deployable one beats on accuracy, latency and size at once."""
    usable = [c for c in candidates if c.deployable and math.isfinite(c.latency_ms)]

    def dominates(a: Candidate, b: Candidate) -> bool:
        no_worse = a.accuracy >= b.accuracy and a.latency_ms <= b.latency_ms and a.size_kb <= b.size_kb
        better = a.accuracy > b.accuracy or a.latency_ms < b.latency_ms or a.size_kb < b.size_kb
        return no_worse and better

    return [c for c in usable if not any(dominates(o, c) for o in usable if o is not c)]


def choose_champion(candidates: list[Candidate], latency_budget_ms: float) -> tuple[Candidate | None, str]:
    """(the champion or None, why): the most accurate deployable candidate within the budget."""
    usable = [c for c in candidates if c.deployable and math.isfinite(c.latency_ms)]
    if not usable:
        return None, "no candidate built and passed its parity check on the target"
    within = [c for c in usable if not latency_budget_ms or c.latency_ms <= latency_budget_ms]
    if not within:
        fastest = min(usable, key=lambda c: c.latency_ms)
        return None, (
            f"no candidate meets the latency budget of {latency_budget_ms:g} ms on the target; the fastest is "
            f"v{fastest.version} ({fastest.derivation}) at {fastest.latency_ms:.3g} ms"
        )
    best = max(within, key=lambda c: (c.accuracy, -c.latency_ms))
    budget = f"within the budget of {latency_budget_ms:g} ms" if latency_budget_ms else "no latency budget"
    return best, (
        f"v{best.version} ({best.derivation}) is the most accurate candidate {budget}: accuracy {best.accuracy:.4f}, "
        f"{best.latency_ms:.3g} ms at batch 1, {best.size_kb:.0f} kB"
    )


def pareto_plot(candidates: list[Candidate], front: list[Candidate], champion: Candidate | None, path: Path) -> Path:
    """Accuracy against latency (marker size = model size); the front joined, the champion marked."""
    import plotly.graph_objects as go

    shown = [c for c in candidates if math.isfinite(c.latency_ms)]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[c.latency_ms for c in shown],
            y=[c.accuracy for c in shown],
            mode="markers+text",
            text=[f"v{c.version} {c.derivation}" for c in shown],
            textposition="top center",
            marker={"size": [8 + 30 * (c.size_kb / max(s.size_kb for s in shown)) for c in shown]},
            name="candidates (size = model size)",
        )
    )
    ordered = sorted(front, key=lambda c: c.latency_ms)
    figure.add_trace(
        go.Scatter(
            x=[c.latency_ms for c in ordered], y=[c.accuracy for c in ordered], mode="lines", name="Pareto front"
        )
    )
    if champion is not None:
        figure.add_trace(
            go.Scatter(
                x=[champion.latency_ms],
                y=[champion.accuracy],
                mode="markers",
                marker={"symbol": "star", "size": 18},
                name="champion",
            )
        )
    figure.update_layout(
        title="Candidates: accuracy vs p50 latency at batch 1 on the target",
        xaxis_title="latency (ms)",
        yaxis_title="accuracy (test split)",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(str(path), include_plotlyjs="cdn")
    return path


def table_markdown(candidates: list[Candidate], front: list[Candidate], champion: Candidate | None) -> str:
    """The gate's table as Markdown (logged beside the plot)."""
    on_front = {c.version for c in front}
    lines = [
        "| version | derivation | parent | accuracy | p50 ms (b1) | size kB | deployable | front | champion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(candidates, key=lambda c: int(c.version)):
        lines.append(
            f"| {c.version} | {c.derivation} | {c.parent_version} | {c.accuracy:.4f} | {c.latency_ms:.3g} | "
            f"{c.size_kb:.0f} | {'yes' if c.deployable else 'no: ' + c.verdict} | "
            f"{'yes' if c.version in on_front else ''} | {'yes' if champion and champion.version == c.version else ''} |"
        )
    return "\n".join(lines) + "\n"
