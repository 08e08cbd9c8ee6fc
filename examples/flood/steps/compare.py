"""Compare step (local): the scenarios of several return periods side by side.

Mirrors FloodAdapt's scenario comparison (and its risk view): flood extents of all return periods on
one map, and flooded area, exposure and damage against the return period, with the expected annual
damage (trapezoidal integral of damage over annual exceedance probability 1/T) as a risk figure.

Usage: python3 compare.py --scenario scenario_T10.npz --flood flood_T10.npz ... --impact impact_T10.json ...
       ->  comparison.png, comparison.csv, comparison.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

FLOODED = 0.10  # m


def table(impacts: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One row per return period, ascending."""
    keys = ("return_period", "peak_sea_level_m", "rain_mm", "flooded_area_km2", "buildings_exposed",
            "people_exposed", "damage_eur")
    rows = [{k: float(i[k]) for k in keys} for i in impacts]
    return sorted(rows, key=lambda r: r["return_period"])


def expected_annual_damage(rows: list[dict[str, float]]) -> float:
    """Trapezoidal integral of damage over annual exceedance probability (between the periods given)."""
    p = np.array([1.0 / r["return_period"] for r in rows])
    d = np.array([r["damage_eur"] for r in rows])
    return float(np.sum(0.5 * (d[1:] + d[:-1]) * (p[:-1] - p[1:]))) if len(rows) > 1 else 0.0


def is_monotonic(rows: list[dict[str, float]], key: str) -> bool:
    values = [r[key] for r in rows]
    return all(b >= a for a, b in itertools.pairwise(values))


def plot(path: Path, dem: np.ndarray, land: np.ndarray, dx: float, floods: dict[float, np.ndarray],
         rows: list[dict[str, float]]) -> None:
    """Flood extents on the hillshade, and impact against return period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LightSource, ListedColormap
    from matplotlib.patches import Patch

    extent = (0.0, dem.shape[1] * dx / 1000, 0.0, dem.shape[0] * dx / 1000)
    fig = plt.figure(figsize=(14, 6), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[1.1, 1])
    ax, right = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax.imshow(LightSource(azdeg=315, altdeg=35).hillshade(dem, vert_exag=8, dx=dx, dy=dx), cmap="gray",
              origin="lower", extent=extent, vmin=-0.3, vmax=1.2)
    sea = np.where(land, np.nan, 1.0)
    ax.imshow(sea, origin="lower", extent=extent, cmap=ListedColormap(["#b0c4de"]), alpha=0.9)
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(floods)))  # frequent floods dark, rare ones light
    handles = [Patch(color="#b0c4de", label="sea, river")]
    for (period, depth), colour in sorted(zip(sorted(floods.items()), colours, strict=True), key=lambda x: -x[0][0]):
        mask = np.where(land & (depth >= FLOODED), 1.0, np.nan)  # largest first, smaller extents on top
        ax.imshow(mask, origin="lower", extent=extent, cmap=ListedColormap([colour]), alpha=0.8)
        handles.insert(1, Patch(color=colour, label=f"T = {period:g} yr"))
    ax.legend(handles=handles, loc="upper right", title="flooded land (>= 0.1 m)")
    ax.set(title="Flood extent by return period", xlabel="km (sea to the west)", ylabel="km")

    t = [r["return_period"] for r in rows]
    right.plot(t, [r["flooded_area_km2"] for r in rows], "o-", color="tab:blue", label="flooded area (km$^2$)")
    right.plot(t, [r["damage_eur"] / 1e7 for r in rows], "s-", color="tab:red", label="damage (10 M EUR)")
    right.plot(t, [r["buildings_exposed"] / 100 for r in rows], "^-", color="tab:orange",
               label="exposed buildings (hundreds)")
    right.set_xscale("log")
    right.set_xticks(t, [f"{v:g}" for v in t])
    right.set(xlabel="return period (years)", ylim=(0, None),
              title=f"Impact against return period; expected annual damage {expected_annual_damage(rows) / 1e3:.0f} "
                    "k EUR/yr")
    right.grid(alpha=0.3)
    right.legend(loc="upper left")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(scenario: Path, floods: list[Path], impacts: list[Path], out_dir: Path) -> dict[str, Any]:
    with np.load(scenario) as s:
        dem, land, dx = s["dem"], s["land"], float(s["dx"])
    maps = {}
    for f in floods:
        with np.load(f) as data:
            maps[float(f.stem.split("_T")[-1])] = data["max_depth"]
    rows = table([json.loads(p.read_text()) for p in impacts])
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "comparison.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = {"scenarios": rows, "expected_annual_damage_eur": expected_annual_damage(rows),
              "flooded_area_grows_with_return_period": is_monotonic(rows, "flooded_area_km2"),
              "damage_grows_with_return_period": is_monotonic(rows, "damage_eur")}
    (out_dir / "comparison.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(out_dir / "comparison.png", dem, land, dx, maps, rows)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True, help="one scenario_T<T>.npz (for the DEM)")
    parser.add_argument("--flood", type=Path, nargs="+", required=True, help="flood_T<T>.npz files")
    parser.add_argument("--impact", type=Path, nargs="+", required=True, help="impact_T<T>.json files")
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    result = run(args.scenario, args.flood, args.impact, args.out_dir)
    for r in result["scenarios"]:
        print(f"compare: T={r['return_period']:>5g} yr  flooded {r['flooded_area_km2']:.3f} km2  "
              f"buildings {r['buildings_exposed']:.0f}  damage {r['damage_eur'] / 1e6:.1f} M EUR", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
