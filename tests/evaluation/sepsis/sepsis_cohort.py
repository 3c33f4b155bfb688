"""A tiny seeded synthetic cohort in the official PhysioNet 2019 ``.psv`` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitalsentry.data.schema import PHYSIONET2019_COLUMNS

HEADER = PHYSIONET2019_COLUMNS


def write_cohort(folder: Path, n_patients: int, seed: int) -> Path:
    """Write ``n_patients`` stays; a third become septic (HR, RR, temperature, lactate drift)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_patients):
        hours = int(rng.integers(20, 60))
        septic = i % 3 == 0
        onset = int(rng.integers(10, hours + 4)) if septic else None
        t = np.arange(hours)
        drift = np.clip((t - (onset - 10)) / 10, 0, 2) if onset is not None else np.zeros(hours)
        table = np.full((hours, len(HEADER)), np.nan)
        col = {name: j for j, name in enumerate(HEADER)}
        table[:, col["HR"]] = 80 + 15 * drift + rng.normal(0, 4, hours)
        table[:, col["O2Sat"]] = np.clip(97 - 2 * drift + rng.normal(0, 1, hours), 80, 100)
        table[:, col["Temp"]] = 37 + 0.8 * drift + rng.normal(0, 0.2, hours)
        table[:, col["SBP"]] = 120 - 10 * drift + rng.normal(0, 6, hours)
        table[:, col["MAP"]] = 85 - 8 * drift + rng.normal(0, 5, hours)
        table[:, col["DBP"]] = 65 - 5 * drift + rng.normal(0, 4, hours)
        table[:, col["Resp"]] = 16 + 5 * drift + rng.normal(0, 1.5, hours)
        table[:, col["Lactate"]] = 1.2 + 1.5 * drift + rng.normal(0, 0.2, hours)
        table[:, col["WBC"]] = 9 + 4 * drift + rng.normal(0, 1, hours)
        for name in ("Temp", "SBP", "MAP", "DBP", "Lactate", "WBC"):
            sparse = rng.random(hours) < (0.6 if name in ("Temp", "Lactate", "WBC") else 0.15)
            table[sparse, col[name]] = np.nan
        table[:, col["Age"]] = rng.integers(20, 90)
        table[:, col["Gender"]] = i % 2
        table[:, col["Unit1"]] = 1
        table[:, col["Unit2"]] = 0
        table[:, col["HospAdmTime"]] = -rng.integers(0, 50)
        table[:, col["ICULOS"]] = t + 1
        label = np.zeros(hours)
        if onset is not None:
            label[max(0, onset - 6) :] = 1
        table[:, col["SepsisLabel"]] = label
        lines = ["|".join(HEADER)]
        lines += ["|".join("NaN" if np.isnan(v) else f"{v:.2f}" for v in row) for row in table]
        (folder / f"p{i:06d}.psv").write_text("\n".join(lines) + "\n")
    return folder
