"""A synthetic house-price table (the shape of a real one: areas, years, counts, a
neighbourhood, a few missing values) whose target is a price near 1e6.

Used by the refit-integrity tests and `benchmarks/refit_stability.py`: scikit-learn's
bundled regression table (diabetes, 442 rows) is too small for an MLP to do well on."""

from __future__ import annotations

import numpy as np
import pandas as pd


def price_table(n_rows: int = 2930, seed: int = 0) -> pd.DataFrame:
    """`n_rows` houses; `price` (median about 7e5) depends on area, quality, age, lot,
    garage and neighbourhood, with log-normal noise."""
    rng = np.random.default_rng(seed)
    hoods = [f"N{i}" for i in range(12)]
    effect = dict(zip(hoods, rng.normal(0, 0.15, len(hoods)), strict=True))
    area = np.exp(rng.normal(7.3, 0.33, n_rows)).round()
    lot = np.exp(rng.normal(9.1, 0.5, n_rows)).round()
    year = rng.integers(1880, 2011, n_rows)
    quality = np.clip(np.round(rng.normal(6, 1.4, n_rows)), 1, 10)
    bedrooms = rng.integers(1, 7, n_rows)
    garage = rng.integers(0, 4, n_rows)
    hood = rng.choice(hoods, n_rows)
    log_price = (
        13.45
        + 0.55 * np.log(area / 1500)
        + 0.08 * np.log(lot / 9000)
        + 0.09 * (quality - 6)
        + 0.003 * (year - 1970)
        + 0.04 * garage
        + 0.01 * bedrooms
        + np.array([effect[h] for h in hood])
        + rng.normal(0, 0.12, n_rows)
    )
    frame = pd.DataFrame(
        {
            "area": area,
            "lot_area": lot,
            "year_built": year,
            "quality": quality,
            "bedrooms": bedrooms,
            "garage": garage,
            "neighbourhood": hood,
            "price": np.exp(log_price).round(-2),
        }
    )
    frame.loc[rng.random(n_rows) < 0.05, "lot_area"] = np.nan
    return frame
