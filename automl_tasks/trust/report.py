"""A model version's trust report: noise robustness, adversarial robustness, membership
inference and (when trained with it) differential privacy, with what was skipped and why.

The numbers become MLflow model metrics of the version (`metrics`) and version tags
(`tags`, which the promotion gate reads); the curves are a PNG and the whole report a JSON
artifact. A part that cannot be measured for this model is named in `skipped` with the
reason; it never gets a number.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automl_tasks.core.tags import (
    TRUST_ADV_ACCURACY_TAG,
    TRUST_DP_EPSILON_TAG,
    TRUST_MIA_AUC_TAG,
    TRUST_NOISE_RETAINED_TAG,
    TRUST_SKIPPED_TAG,
)
from automl_tasks.trust.adversarial import AdversarialResult, attack
from automl_tasks.trust.membership import MembershipResult, loss_threshold_attack
from automl_tasks.trust.noise import Curve, noise_curves
from automl_tasks.trust.subject import TrustSubject

log = logging.getLogger(__name__)

REPORT_FILE = "trust_report.json"
PLOT_FILE = "trust_report.png"
NOISE, ADVERSARIAL, MEMBERSHIP, DIFFERENTIAL_PRIVACY = "noise", "adversarial", "membership", "differential_privacy"


@dataclass(frozen=True)
class TrustReport:
    model_kind: str
    metric: str
    clean_score: float
    curves: list[Curve] = field(default_factory=list)
    adversarial: AdversarialResult | None = None
    membership: MembershipResult | None = None
    dp_epsilon: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why it was not measured
    seconds: float = 0.0
    part_seconds: dict[str, float] = field(default_factory=dict)  # measured part -> what it took

    @property
    def noise_retained(self) -> float | None:
        """The Gaussian (texts: token-replacement) curve's area as a share of the clean score
        (1.0: noise costs nothing). Only for metrics where higher is better and the clean
        score is positive."""
        gaussian = next((c for c in self.curves if c.name in ("gaussian", "token_replacement")), None)
        if gaussian is None or self.metric in ("log_loss", "rmse", "mae") or self.clean_score <= 0:
            return None
        return gaussian.area / self.clean_score

    def metrics(self) -> dict[str, float]:
        """Numeric results as MLflow metrics (`trust_*`); infinite values are left out."""
        out: dict[str, float] = {"trust_clean_score": self.clean_score, "trust_seconds": self.seconds}
        for curve in self.curves:
            out[f"trust_{curve.name}_auc"] = curve.area
        if self.noise_retained is not None:
            out["trust_noise_retained"] = self.noise_retained
        if self.adversarial is not None:
            a = self.adversarial
            out |= {
                "trust_adv_accuracy": a.accuracy,
                "trust_adv_epsilon": a.epsilon,
                "trust_adv_clean_accuracy": a.clean_accuracy,
                "trust_adv_median_perturbation": a.median_perturbation,
                **{f"trust_{k}": v for k, v in a.extra.items()},
            }
        if self.membership is not None:
            out |= {"trust_mia_auc": self.membership.auc, "trust_mia_advantage": self.membership.advantage}
        if self.dp_epsilon is not None:
            out["trust_dp_epsilon"] = self.dp_epsilon
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}

    def tags(self) -> dict[str, str]:
        """The numbers the promotion gate and the Families page read, as version tags."""
        tags = {}
        if self.membership is not None:
            tags[TRUST_MIA_AUC_TAG] = f"{self.membership.auc:.4g}"
        if self.adversarial is not None:
            tags[TRUST_ADV_ACCURACY_TAG] = f"{self.adversarial.accuracy:.4g}"
        if self.noise_retained is not None:
            tags[TRUST_NOISE_RETAINED_TAG] = f"{self.noise_retained:.4g}"
        if self.dp_epsilon is not None:
            tags[TRUST_DP_EPSILON_TAG] = f"{self.dp_epsilon:.4g}"
        if self.skipped:
            tags[TRUST_SKIPPED_TAG] = "; ".join(f"{part}: {why}" for part, why in self.skipped.items())
        return tags

    def summary(self) -> str:
        """One line for logs and the advisor."""
        parts = [f"{self.metric} {self.clean_score:.4g}"]
        if self.noise_retained is not None:
            parts.append(f"keeps {self.noise_retained:.0%} of it under noise")
        if self.adversarial is not None:
            a = self.adversarial
            parts.append(f"{a.accuracy:.0%} accurate under {a.attack.split(' ')[0]} at eps {a.epsilon:g}")
        if self.membership is not None:
            parts.append(f"membership attack AUC {self.membership.auc:.3f}")
        if self.dp_epsilon is not None:
            parts.append(f"DP-SGD epsilon {self.dp_epsilon:.3g}")
        return "; ".join(parts)

    def to_json(self) -> str:
        data = asdict(self)
        data["curves"] = [asdict(c) | {"area": c.area} for c in self.curves]
        return json.dumps(data, default=str, indent=1)

    def plot(self, path: Path) -> Path:
        """The noise curves and, for white-box attacks, accuracy against epsilon, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = 2 if self.adversarial is not None and self.adversarial.extra else 1
        figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
        left = axes[0][0]
        for curve in self.curves:
            left.plot(curve.levels, curve.scores, marker="o", label=f"{curve.name} (area {curve.area:.3g})")
        left.set(xlabel="noise level (sigma / column std, flip or token share)", ylabel=self.metric)
        left.set_title(f"{self.model_kind}: metric under noise")
        left.legend()
        if panels == 2:
            right = axes[0][1]
            for prefix, label in (("fgsm", "FGSM"), ("pgd", "PGD"), ("same_norm_noise", "noise, PGD's L2 norm")):
                points = sorted(
                    (float(k.rsplit("eps", 1)[1]), v)
                    for k, v in self.adversarial.extra.items()
                    if k.startswith(f"{prefix}_accuracy")
                )
                right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
            attack = self.adversarial.attack
            units = (
                "L-inf, pixels in [0, 1]"
                if "L-inf" in attack
                else "per token, share of the embedding norm"
                if "token" in attack
                else "RMS, scaled numeric inputs"
            )
            right.set(xlabel=f"epsilon ({units})", ylabel="accuracy")
            right.set_title("accuracy under attack")
            right.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        plt.close(figure)
        return path


def _measure(part: str, skipped: dict[str, str], run: Any) -> Any:
    """`run()`, or None with the reason in `skipped` when this part does not apply or fails."""
    try:
        return run()
    except NotImplementedError as exc:
        skipped[part] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, never invented
        log.warning("trust report: the %s part failed: %s", part, exc, exc_info=True)
        skipped[part] = f"failed: {type(exc).__name__}: {exc}"
    return None


def measure_trust(subject: TrustSubject, *, seed: int = 0, skip: dict[str, str] | None = None) -> TrustReport:
    """Every part of the report that applies to `subject`; what does not is in `skipped`.
    `skip`: parts the caller knows cannot be measured (part -> why)."""
    started = time.perf_counter()
    skipped: dict[str, str] = dict(skip or {})

    part_seconds: dict[str, float] = {}

    def part(name: str, run: Any) -> Any:
        if name in skipped:
            return None
        part_started = time.perf_counter()
        result = _measure(name, skipped, run)
        if name not in skipped:  # measured: what it took
            part_seconds[name] = time.perf_counter() - part_started
        return result

    clean = subject.score(subject.held_out)
    curves = part(NOISE, lambda: noise_curves(subject, seed=seed)) or []
    adversarial = part(ADVERSARIAL, lambda: attack(subject, seed=seed))
    membership = part(MEMBERSHIP, lambda: loss_threshold_attack(subject, seed=seed))
    if subject.dp_epsilon is None:
        skipped[DIFFERENTIAL_PRIVACY] = "not trained with differential privacy (no epsilon to report)"
    report = TrustReport(
        model_kind=subject.model_kind,
        metric=subject.metric.name,
        clean_score=clean,
        curves=curves,
        adversarial=adversarial,
        membership=membership,
        dp_epsilon=subject.dp_epsilon,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        part_seconds=part_seconds,
    )
    took = ", ".join(f"{name} {seconds:.1f}" for name, seconds in part_seconds.items())
    log.info("trust report (%.1f s: %s): %s", report.seconds, took, report.summary())
    for part, why in skipped.items():
        log.info("trust report: %s not measured: %s", part, why)
    return report
