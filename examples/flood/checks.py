"""Physical checks of the flood example's outputs (run by ``run_demo.py`` and the tests).

1. **Volume balance.** Stored-volume change = rain in + sea inflow - sea outflow, to ``VOLUME_TOLERANCE``
   (relative to the gross volume in play). The scheme conserves mass by construction (round-off ~1e-15);
   the tolerance only leaves room for floating point.
2. **No standing water above the flood level.** The flood level is the peak storm-tide level plus
   ``FLOOD_LEVEL_MARGIN`` (for inertial run-up). On ground above it, sea water never arrives; only rain
   falls there, and by the end of the event it has run off: the final depth stays below
   ``STANDING_WATER``. What is left is the last film of overland flow, still draining (about 1-2 cm on
   the flat foot of the hills).
3. **Monotonicity.** Across return periods, flooded area (and exposure) grow with the return period.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FLOOD_LEVEL_MARGIN", "STANDING_WATER", "VOLUME_TOLERANCE", "Check", "monotonic_checks",
           "scenario_checks"]

VOLUME_TOLERANCE = 1e-6
FLOOD_LEVEL_MARGIN = 0.5  # m
STANDING_WATER = 0.05  # m


@dataclass(frozen=True)
class Check:
    """One physical check: its name, whether it passed, and the figures behind it."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


def scenario_checks(scenario: Path, flood: Path, summary: Path) -> list[Check]:
    """Checks 1 and 2 on one scenario's files (``scenario_T*.npz``, ``flood_T*.npz``, ``flood_T*.json``)."""
    info = json.loads(summary.read_text())
    vol = info["volume_m3"]
    balance = vol["final"] - vol["initial"] - (vol["rain_in"] + vol["sea_in"] - vol["sea_out"])
    rel = abs(balance) / max(vol["initial"] + vol["rain_in"] + vol["sea_in"], 1e-30)
    period = info["return_period"]
    checks = [Check(f"T={period:g} volume balance", rel < VOLUME_TOLERANCE,
                    f"relative error {rel:.1e} (limit {VOLUME_TOLERANCE:.0e}); rain {vol['rain_in']:.3g} m3, "
                    f"sea in {vol['sea_in']:.3g} m3, sea out {vol['sea_out']:.3g} m3")]
    with np.load(scenario) as s, np.load(flood) as f:
        level = float(s["sea_level"].max()) + FLOOD_LEVEL_MARGIN
        high = s["dem"] > level
        final = f["final_depth"][high]
    deepest = float(final.max(initial=0.0))
    checks.append(Check(f"T={period:g} no standing water above the flood level", deepest < STANDING_WATER,
                        f"{int(high.sum())} cells above {level:.2f} m; deepest final water there "
                        f"{deepest * 100:.1f} cm (limit {STANDING_WATER * 100:.0f} cm)"))
    return checks


def monotonic_checks(impacts: list[Path]) -> list[Check]:
    """Check 3 over the ``impact_T*.json`` of several return periods."""
    rows = sorted((json.loads(p.read_text()) for p in impacts), key=lambda r: r["return_period"])
    checks = []
    for key, label in (("flooded_area_km2", "flooded area (km2)"), ("buildings_exposed", "exposed buildings")):
        values = [r[key] for r in rows]
        ok = all(b >= a for a, b in itertools.pairwise(values)) and values[-1] > values[0]
        series = ", ".join(f"T={r['return_period']:g}: {r[key]:.3g}" for r in rows)
        checks.append(Check(f"{label} grows with the return period", ok, series))
    return checks
