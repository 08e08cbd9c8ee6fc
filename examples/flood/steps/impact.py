"""Impact step (local): exposure and damage of buildings and people, and the flood map.

Mirrors FloodAdapt's impact step (there: Delft-FIAT on real building footprints; here the scenario's
synthetic town): each building takes the maximum water depth of its cell, falls into a depth class,
and loses a share of its replacement value read off a depth-damage curve (the JRC global curve for
residential buildings in Europe, Huizinga et al. 2017). Writes a table per depth class, a summary and
the flood-map PNG (hillshade, maximum depth, buildings by depth class, and the event's hydrograph).

Usage: python3 impact.py scenario_T100.npz flood_T100.npz flood_T100.json
       ->  impact_T100.csv, impact_T100.json, flood_map_T100.png
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: JRC depth-damage curve, residential, Europe: depth (m) -> share of the replacement value lost.
DAMAGE_DEPTH = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0])
DAMAGE_SHARE = np.array([0.0, 0.25, 0.40, 0.50, 0.60, 0.75, 0.85, 0.95, 1.0])
#: Depth classes (m): lower bounds; below the first a building counts as dry.
CLASSES = [("dry", 0.0), ("0.1-0.5 m", 0.1), ("0.5-1 m", 0.5), ("1-2 m", 1.0), ("> 2 m", 2.0)]
CLASS_COLOURS = ["#bdbdbd", "#ffd92f", "#fc8d62", "#e31a1c", "#67000d"]
FLOODED = 0.10  # m; as the model's flooded-area threshold


def depth_class(depth: np.ndarray) -> np.ndarray:
    """Index into CLASSES for each depth."""
    bounds = np.array([b for _, b in CLASSES[1:]])
    return np.searchsorted(bounds, depth, side="right")


def damage_share(depth: np.ndarray) -> np.ndarray:
    """Share of the replacement value lost at each depth (0 below the flooded threshold)."""
    return np.where(depth >= FLOODED, np.interp(depth, DAMAGE_DEPTH, DAMAGE_SHARE), 0.0)


def assess(scenario: dict[str, np.ndarray], max_depth: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows per depth class (buildings, people, damage in EUR), and each building's depth."""
    depth = max_depth[scenario["bldg_row"], scenario["bldg_col"]]
    cls = depth_class(depth)
    damage = damage_share(depth) * scenario["bldg_value"]
    rows = []
    for k, (name, _) in enumerate(CLASSES):
        sel = cls == k
        rows.append({"depth_class": name, "buildings": int(sel.sum()),
                     "people": int(scenario["bldg_people"][sel].sum()), "damage_eur": float(damage[sel].sum())})
    return rows, depth


def write_map(path: Path, scenario: dict[str, np.ndarray], flood: dict[str, np.ndarray], depth: np.ndarray,
              summary: dict[str, Any], title: str) -> None:
    """The flood map: hillshaded DEM, maximum depth, buildings by depth class; the hydrograph beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LightSource, ListedColormap
    from matplotlib.lines import Line2D

    z, dx = scenario["dem"], float(scenario["dx"])
    extent = (0.0, z.shape[1] * dx / 1000, 0.0, z.shape[0] * dx / 1000)
    fig = plt.figure(figsize=(13, 6.2), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[1.25, 1])
    ax, hy = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    land = ListedColormap(plt.get_cmap("terrain")(np.linspace(0.25, 0.95, 256)))  # no blues: blue is water
    shade = LightSource(azdeg=315, altdeg=35).shade(z, land, vert_exag=8, dx=dx, dy=dx, blend_mode="soft",
                                                    vmin=0.0, vmax=max(float(z.max()), 10.0))
    ax.imshow(shade, origin="lower", extent=extent)
    wet = np.where(flood["max_depth"] >= FLOODED, flood["max_depth"], np.nan)
    water = ListedColormap(plt.get_cmap("Blues")(np.linspace(0.35, 1.0, 256)))  # shallow water still reads as water
    img = ax.imshow(wet, origin="lower", extent=extent, cmap=water, vmin=0, vmax=3, alpha=0.9)
    fig.colorbar(img, ax=ax, shrink=0.8, label="maximum water depth (m)", extend="max")
    ax.contour(np.linspace(extent[0], extent[1], z.shape[1]), np.linspace(extent[2], extent[3], z.shape[0]), z,
               levels=[float(summary["peak_sea_level"])], colors="k", linewidths=0.6, linestyles="--")
    xs = (scenario["bldg_col"] + 0.5) * dx / 1000
    ys = (scenario["bldg_row"] + 0.5) * dx / 1000
    cls = depth_class(depth)
    ax.scatter(xs, ys, c=[CLASS_COLOURS[k] for k in cls], s=9, marker="s", edgecolors="k", linewidths=0.3)
    handles = [Line2D([], [], marker="s", ls="", mfc=c, mec="k", mew=0.3, label=f"building, {name}")
               for (name, _), c in zip(CLASSES, CLASS_COLOURS, strict=True)]
    handles.append(Line2D([], [], color="k", lw=0.6, ls="--", label="ground = peak sea level"))
    ax.legend(handles=handles, loc="upper right", fontsize=7.5, framealpha=0.85)
    ax.set(xlabel="km (sea to the west)", ylabel="km", title=title)

    t = flood["series_t"] / 3600
    hy.plot(t, flood["series_sea_level"], color="navy", label="sea level at the boundary (m)")
    hy.plot(t, flood["series_flooded_area"] / 1e6, color="tab:red", label="flooded land, depth >= 0.1 m (km$^2$)")
    hy.set(xlabel="hours", ylabel="m  |  km$^2$", title="Storm tide, rainfall and flooded area")
    rain = hy.twinx()
    rain.bar(t, flood["series_rain_rate"] * 3.6e6, width=float(t[1] - t[0]) if t.size > 1 else 0.1,
             align="edge", color="tab:cyan", alpha=0.5, label="rainfall (mm/h)")
    rain.set_ylabel("rainfall (mm/h)")
    rain.set_ylim(0, max(1.0, float(flood["series_rain_rate"].max()) * 3.6e6 * 3))
    rain.invert_yaxis()
    handles_a, labels_a = hy.get_legend_handles_labels()
    handles_b, labels_b = rain.get_legend_handles_labels()
    hy.legend(handles_a + handles_b, labels_a + labels_b, loc="center right", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(scenario_path: Path, flood_path: Path, summary_path: Path, out_dir: Path) -> dict[str, Any]:
    """Write ``impact_T<T>.csv``, ``impact_T<T>.json`` and ``flood_map_T<T>.png``; return the summary."""
    with np.load(scenario_path) as s, np.load(flood_path) as f:
        scenario = {k: s[k] for k in s.files}
        flood = {k: f[k] for k in f.files}
    summary = json.loads(summary_path.read_text())
    period = float(scenario["return_period"])
    tag = f"T{period:g}"
    rows, depth = assess(scenario, flood["max_depth"])
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / f"impact_{tag}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    exposed = [r for r in rows if r["depth_class"] != "dry"]
    result: dict[str, Any] = {
        "return_period": period,
        "peak_sea_level_m": float(summary["peak_sea_level"]),
        "rain_mm": float(scenario["rain_rate"].sum() * 600.0 * 1000.0),
        "flooded_area_km2": float(summary["flooded_area_km2"]),
        "buildings_total": int(depth.size),
        "buildings_exposed": sum(int(r["buildings"]) for r in exposed),
        "people_exposed": sum(int(r["people"]) for r in exposed),
        "damage_eur": float(sum(float(r["damage_eur"]) for r in rows)),
        "by_depth_class": rows,
    }
    (out_dir / f"impact_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    title = (f"DT-Flood scenario: 1-in-{period:g}-year storm tide ({result['peak_sea_level_m']:.2f} m) and rain "
             f"({result['rain_mm']:.0f} mm)\n{result['flooded_area_km2']:.2f} km$^2$ flooded; "
             f"{result['buildings_exposed']} buildings, {result['people_exposed']} people exposed; "
             f"damage {result['damage_eur'] / 1e6:.1f} M EUR")
    write_map(out_dir / f"flood_map_{tag}.png", scenario, flood, depth, summary, title)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path, help="scenario_T<T>.npz from the prepare step")
    parser.add_argument("flood", type=Path, help="flood_T<T>.npz from the model step")
    parser.add_argument("summary", type=Path, help="flood_T<T>.json from the model step")
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    r = run(args.scenario, args.flood, args.summary, args.out_dir)
    print(f"impact: T={r['return_period']:g} yr, {r['buildings_exposed']}/{r['buildings_total']} buildings and "
          f"{r['people_exposed']} people exposed, damage {r['damage_eur'] / 1e6:.1f} M EUR",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
