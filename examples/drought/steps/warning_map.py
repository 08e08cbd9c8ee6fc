"""Drought-warning map (PNG), summary table (CSV, printed) and the physical checks: the last, local step.

Standalone (numpy and matplotlib). Warning classes per cell, in the spirit of the European Drought
Observatory's combined indicator (watch, warning, alert), from the indices of the latest month and the
forecaster's next month (``s`` is the index scale, 3 months by default):

* **watch**: SPI-s or SPEI-s at or below -1 now, or the forecast SPEI-s at or below -1 next month;
* **warning**: SPI-s and SPEI-s both at or below -1 now (a precipitation deficit with high evaporative demand);
* **alert**: a warning, and the forecast SPEI-s at or below -1.5 next month (severe and persisting).

Checks (printed, in ``report.json``; exit code 1 if one fails): SPI and SPEI over the reference period have
per cell a mean within 0.1 of 0 and a standard deviation within 0.15 of 1 (both are fitted there: only the
misfit of the distribution to 30 values per calendar month remains, measured at 0.004 and 0.03); the
forecaster beats persistence; the PNG is a real picture.

    python3 warning_map.py --region region.json --forecast forecast.json forecast.npz \
        --indices indices_tile_*.npz summary_tile_*.json --out-dir .
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, LightSource, ListedColormap
from matplotlib.patches import Patch, Rectangle

CLASS_NAMES = ["no warning", "watch", "warning", "alert"]
CLASS_COLOURS = ["#ffffff", "#ffe34d", "#ff8c00", "#d7191c"]
#: McKee et al. (1993) classes, from the driest.
MCKEE = [(-2.0, "extreme drought"), (-1.5, "severe drought"), (-1.0, "moderate drought"), (1.0, "near normal"),
         (1.5, "moderately wet"), (2.0, "very wet"), (float("inf"), "extremely wet")]
MEAN_TOLERANCE, SD_TOLERANCE = 0.1, 0.15
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def mckee(value: float) -> str:
    """The McKee class of an SPI (or SPEI) value."""
    for upper, label in MCKEE:
        if (value <= upper) if upper < 0 else (value < upper):
            return label
    return MCKEE[-1][1]


def warning_classes(spi_now: np.ndarray, spei_now: np.ndarray, spei_next: np.ndarray) -> np.ndarray:
    """0 no warning, 1 watch, 2 warning, 3 alert (see the module's docstring); NaN counts as no signal."""
    spi_now, spei_now, spei_next = (np.nan_to_num(a, nan=0.0) for a in (spi_now, spei_now, spei_next))
    watch = (spi_now <= -1) | (spei_now <= -1) | (spei_next <= -1)
    warning = (spi_now <= -1) & (spei_now <= -1)
    alert = warning & (spei_next <= -1.5)
    return np.where(alert, 3, np.where(warning, 2, np.where(watch, 1, 0))).astype("int8")


def _label(start_year: int, month_index: int) -> str:
    return f"{MONTHS[month_index % 12]} {start_year + month_index // 12}"


def assemble(index_files: list[Path], forecast_file: Path) -> dict[str, Any]:
    """Full-region grids from the per-tile files (tiles placed by their row and column offsets)."""
    tiles = []
    for path in sorted(index_files, key=lambda p: p.name):
        with np.load(path) as f:
            tiles.append({k: f[k] for k in f.files} | {"name": path.stem.removeprefix("indices_")})
    with np.load(forecast_file) as f:
        fc = {k: f[k] for k in f.files}
    size = tiles[0]["elevation"].shape
    ny = max(int(t["row0"]) for t in tiles) + size[0]
    nx = max(int(t["col0"]) for t in tiles) + size[1]
    months = len(tiles[0]["spi"])
    grid: dict[str, Any] = {k: np.full((ny, nx), np.nan) for k in ("elevation", "lat", "lon", "spi_now", "spei_now",
                                                                    "spi_next", "spei_next")}
    grid.update({"tile_id": np.full((ny, nx), -1), "tiles": tiles, "months": months, "scale": int(tiles[0]["scale"]),
                 "start_year": int(tiles[0]["start_year"]), "ref": tiles[0]["ref"],
                 "spi_series": np.zeros(months), "spei_series": np.zeros(months)})
    cells = 0
    for i, t in enumerate(tiles):
        cut = (slice(int(t["row0"]), int(t["row0"]) + size[0]), slice(int(t["col0"]), int(t["col0"]) + size[1]))
        for key in ("elevation", "lat", "lon"):
            grid[key][cut] = t[key]
        grid["spi_now"][cut], grid["spei_now"][cut] = t["spi"][-1], t["spei"][-1]
        grid["spi_next"][cut], grid["spei_next"][cut] = fc[f"spi_next_{t['name']}"], fc[f"spei_next_{t['name']}"]
        grid["tile_id"][cut] = i
        grid["spi_series"] += np.nansum(t["spi"].reshape(months, -1), axis=1)
        grid["spei_series"] += np.nansum(t["spei"].reshape(months, -1), axis=1)
        cells += t["elevation"].size
    grid["spi_series"] /= cells
    grid["spei_series"] /= cells
    grid["spi_series"][: grid["scale"] - 1] = np.nan
    grid["spei_series"][: grid["scale"] - 1] = np.nan
    grid["classes"] = warning_classes(grid["spi_now"], grid["spei_now"], grid["spei_next"])
    return grid


def summary_rows(grid: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for i, t in enumerate(grid["tiles"]):
        mask = grid["tile_id"] == i
        cls = grid["classes"][mask]
        rows.append({"tile": t["name"], "elevation_m": round(float(np.mean(grid["elevation"][mask]))),
                     "spi_now": round(float(np.nanmean(grid["spi_now"][mask])), 2),
                     "spei_now": round(float(np.nanmean(grid["spei_now"][mask])), 2),
                     "spi_next": round(float(np.nanmean(grid["spi_next"][mask])), 2),
                     "spei_next": round(float(np.nanmean(grid["spei_next"][mask])), 2),
                     **{f"{name}_pct": round(100 * float(np.mean(cls == k)), 1)
                        for k, name in enumerate(CLASS_NAMES) if k > 0},
                     "class": mckee(float(np.nanmean(grid["spei_now"][mask])))})
    cls = grid["classes"]
    rows.append({"tile": "region", "elevation_m": round(float(np.mean(grid["elevation"]))),
                 **{k: round(float(np.nanmean(grid[k])), 2) for k in ("spi_now", "spei_now", "spi_next", "spei_next")},
                 **{f"{name}_pct": round(100 * float(np.mean(cls == k)), 1)
                    for k, name in enumerate(CLASS_NAMES) if k > 0},
                 "class": mckee(float(np.nanmean(grid["spei_now"])))})
    return rows


def _geo(ax: Any, grid: dict[str, Any]) -> list[float]:
    """Axes in longitude and latitude (cell edges), with the aspect of the map at this latitude."""
    lon, lat = grid["lon"], grid["lat"]
    half_lon = float(abs(lon[0, 1] - lon[0, 0])) / 2
    half_lat = float(abs(lat[0, 0] - lat[1, 0])) / 2
    extent = [float(np.nanmin(lon)) - half_lon, float(np.nanmax(lon)) + half_lon,
              float(np.nanmin(lat)) - half_lat, float(np.nanmax(lat)) + half_lat]
    ax.set_aspect(1 / np.cos(np.radians(np.mean(extent[2:]))))
    ax.tick_params(labelsize=8)
    return extent


def _tile_edges(ax: Any, grid: dict[str, Any], extent: list[float], labels: bool = False) -> None:
    ny, nx = grid["tile_id"].shape
    dlon, dlat = (extent[1] - extent[0]) / nx, (extent[3] - extent[2]) / ny
    for t in grid["tiles"]:
        r0, c0 = int(t["row0"]), int(t["col0"])
        h, w = t["elevation"].shape
        x0, y1 = extent[0] + c0 * dlon, extent[3] - r0 * dlat
        ax.add_patch(Rectangle((x0, y1 - h * dlat), w * dlon, h * dlat, fill=False, ec="0.15", lw=0.9, alpha=0.7))
        if labels:
            ax.text(x0 + 0.4 * dlon, y1 - 0.4 * dlat, t["name"].replace("tile_", "tile "), fontsize=8, va="top",
                    ha="left", color="0.1",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6})


def draw(grid: dict[str, Any], region: dict[str, Any], forecast: dict[str, Any], rows: list[dict[str, Any]],
         path: Path) -> None:
    scale, start = grid["scale"], grid["start_year"]
    now, nxt = _label(start, grid["months"] - 1), _label(start, grid["months"])
    fig = plt.figure(figsize=(16, 10.5), dpi=100, layout="constrained")
    fig.suptitle(f"Drought early warning, Eastern Alps (synthetic data): {now}, with the forecast for {nxt}",
                 fontsize=16, fontweight="bold")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.1, 1])
    top.text(0.5, 0.995, f"SPI-{scale} and SPEI-{scale} per 5 km cell, reference period {region['ref_start']}-"
             f"{region['ref_end']}; indices and the ridge forecaster computed on OSCAR",
             ha="center", va="top", fontsize=10, color="0.3")
    gs = top.add_gridspec(2, 3, width_ratios=[2.25, 1, 1], top=0.95)
    shade = LightSource(azdeg=315, altdeg=40).hillshade(np.nan_to_num(grid["elevation"]), vert_exag=0.05,
                                                        dx=5000.0, dy=5000.0)

    ax = top.add_subplot(gs[:, 0])
    extent = _geo(ax, grid)
    ax.imshow(shade, cmap="gray", extent=extent, vmin=-0.2, vmax=1.1, interpolation="bilinear")
    classes = np.ma.masked_equal(grid["classes"], 0)
    ax.imshow(classes, cmap=ListedColormap(CLASS_COLOURS), norm=BoundaryNorm(np.arange(-0.5, 4.5), 4),
              extent=extent, alpha=0.78, interpolation="nearest")
    _tile_edges(ax, grid, extent, labels=True)
    rules = ["no drought signal", f"SPI-{scale} or SPEI-{scale} <= -1, or forecast SPEI-{scale} <= -1",
             f"SPI-{scale} and SPEI-{scale} both <= -1", f"warning, and forecast SPEI-{scale} <= -1.5"]
    shares = [100 * float(np.mean(grid["classes"] == k)) for k in range(len(CLASS_NAMES))]
    handles = [Patch(facecolor=CLASS_COLOURS[k] if k else "#d9d9d9", edgecolor="0.4",
                     label=f"{name.capitalize()} ({shares[k]:.0f}% of area): {rules[k]}")
               for k, name in enumerate(CLASS_NAMES)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=9, framealpha=0.95,
              title=f"Warning level, {now}", title_fontsize=10, ncol=1)
    ax.set_title(f"Drought warning level, {now} (forecast to {nxt})", fontsize=12, fontweight="bold")
    ax.set_xlabel("longitude (E)", fontsize=8)
    ax.set_ylabel("latitude (N)", fontsize=8)

    panels = [(gs[0, 1], grid["spi_now"], f"SPI-{scale}, {now}"), (gs[0, 2], grid["spei_now"], f"SPEI-{scale}, {now}"),
              (gs[1, 1], grid["spei_next"], f"Forecast SPEI-{scale}, {nxt}")]
    index_axes, image = [], None
    for spec, values, title in panels:
        a = top.add_subplot(spec)
        ext = _geo(a, grid)
        image = a.imshow(values, cmap="RdBu", vmin=-3, vmax=3, extent=ext, interpolation="nearest")
        _tile_edges(a, grid, ext)
        a.set_title(title, fontsize=10)
        index_axes.append(a)
    a = top.add_subplot(gs[1, 2])
    ext = _geo(a, grid)
    terrain = a.imshow(grid["elevation"], cmap="terrain", vmin=0, vmax=3600, extent=ext, interpolation="bilinear")
    a.imshow(shade, cmap="gray", alpha=0.3, extent=ext, interpolation="bilinear")
    _tile_edges(a, grid, ext)
    a.set_title("Elevation (m)", fontsize=10)
    top.colorbar(terrain, ax=a, location="right", shrink=0.9, aspect=15).ax.tick_params(labelsize=7)
    cbar = top.colorbar(image, ax=index_axes[1], location="right", shrink=0.9, aspect=15)
    cbar.set_label("index (all three maps)", fontsize=8)
    cbar.ax.tick_params(labelsize=7)

    ts = bottom.subplots()
    months = grid["months"]
    shown = min(months, 12 * 10)
    x = np.arange(months - shown, months)
    t_years = start + (x + 0.5) / 12
    for lo, hi, colour, name in ((-1.0, -1.5, "#ffe34d", "moderate"), (-1.5, -2.0, "#ff8c00", "severe"),
                                 (-2.0, -3.5, "#d7191c", "extreme")):
        ts.axhspan(hi, lo, color=colour, alpha=0.16, lw=0)
        ts.text(1.002, (lo + max(hi, -3.0)) / 2, name, transform=ts.get_yaxis_transform(), fontsize=7, va="center",
                color="0.3")
    ts.axhline(0, color="0.5", lw=0.8)
    ts.plot(t_years, grid["spi_series"][x], color="#2166ac", lw=1.5, label=f"SPI-{scale} (region mean)")
    ts.plot(t_years, grid["spei_series"][x], color="#b2182b", lw=1.5, label=f"SPEI-{scale} (region mean)")
    t_next = t_years[-1] + 1 / 12
    for key, colour, label in (("spi_next", "#2166ac", "SPI"), ("spei_next", "#b2182b", "SPEI")):
        value = float(np.nanmean(grid[key]))
        last = float(grid[key.replace("next", "series")][-1])
        ts.plot([t_years[-1], t_next], [last, value], color=colour, ls=":", lw=1.5)
        ts.plot([t_next], [value], "o", color=colour, ms=7, mfc="white", mew=1.8,
                label=f"forecast {label}-{scale}, {nxt}: {value:+.2f}")
    verified = int(forecast["verified_on"][0][:4]) + (int(forecast["verified_on"][0][5:]) - 1) / 12
    if verified < t_years[-1]:
        ts.axvspan(max(verified, t_years[0]), t_next + 0.1, color="0.8", alpha=0.3, lw=0)
        ts.text(t_next + 0.05, 2.75, "forecaster verified here (not trained on it)", fontsize=8, color="0.3",
                va="top", ha="right")
    ref_end = region["ref_end"] + 1
    if t_years[0] < ref_end < t_years[-1]:
        ts.axvline(ref_end, color="0.4", lw=0.8, ls="--")
        ts.text(ref_end - 0.03, 2.75, f"end of the reference period ({region['ref_end']})", fontsize=8,
                color="0.3", va="top", ha="right")
    sk = forecast["skill"]
    ts.set_title(f"Region mean, last {shown // 12} years. One-month forecaster (ridge regression), "
                 f"{forecast['verified_on'][0]}..{forecast['verified_on'][1]}: MSE skill vs persistence "
                 f"SPI {sk['spi']['skill_vs_persistence']:+.2f}, SPEI {sk['spei']['skill_vs_persistence']:+.2f}; "
                 f"RMSE SPEI {sk['spei']['rmse_model']:.2f} (persistence {sk['spei']['rmse_persistence']:.2f})",
                 fontsize=10)
    ts.set_ylim(-3.5, 3)
    ts.set_xlim(t_years[0], t_next + 0.1)
    ts.set_ylabel("index", fontsize=9)
    ts.tick_params(labelsize=8)
    ts.legend(loc="lower left", fontsize=8, ncol=4, framealpha=0.9)
    fig.savefig(path)
    plt.close(fig)


def png_stats(path: Path) -> dict[str, Any]:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    return {"bytes": path.stat().st_size, "width": int(pixels.shape[1]), "height": int(pixels.shape[0]),
            "colours": int(colours.size)}


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def checks(summaries: list[dict[str, Any]], forecast: dict[str, Any], png: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for index in ("spi", "spei"):
        worst_mean = max(s[f"{index}_reference"]["max_abs_cell_mean"] for s in summaries)
        worst_sd = max(s[f"{index}_reference"]["max_abs_cell_sd_minus_1"] for s in summaries)
        found.append({"name": f"{index.upper()} reference period, per cell: |mean| <= {MEAN_TOLERANCE}, "
                              f"|sd - 1| <= {SD_TOLERANCE}",
                      "ok": worst_mean <= MEAN_TOLERANCE and worst_sd <= SD_TOLERANCE,
                      "value": {"max_abs_mean": worst_mean, "max_abs_sd_minus_1": worst_sd}})
    for target in ("spi", "spei"):
        s = forecast["skill"][target]
        found.append({"name": f"forecaster beats persistence ({target.upper()}, MSE skill > 0)",
                      "ok": s["skill_vs_persistence"] > 0,
                      "value": {k: round(s[k], 3) for k in ("skill_vs_persistence", "rmse_model", "rmse_persistence")}})
    found.append({"name": "warning map is a picture (> 50 kB, > 1000 colours)",
                  "ok": png["bytes"] > 50_000 and png["colours"] > 1000, "value": png})
    return found


def where(path: Path, out_dir: Path | None) -> str:
    """A file's place for the report: its absolute path when the caller chose the folder, else its name (a CWL
    step writes into a scratch folder that the runner moves to its --outdir)."""
    return str(path.resolve()) if out_dir is not None else path.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", type=Path, required=True, help="region.json of the prepare step")
    parser.add_argument("--forecast", type=Path, nargs="+", required=True, help="forecast.json and forecast.npz")
    parser.add_argument("--indices", type=Path, nargs="+", required=True, help="indices_*.npz and summary_*.json")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where to write the map, table and report (default: the working directory, as a CWL "
                             "step, whose runner then moves them to its --outdir)")
    args = parser.parse_args(argv)
    region = json.loads(args.region.read_text())
    (fc_json,) = [p for p in args.forecast if p.suffix == ".json"]
    (fc_npz,) = [p for p in args.forecast if p.suffix == ".npz"]
    forecast = json.loads(fc_json.read_text())
    summaries = sorted((json.loads(p.read_text()) for p in args.indices if p.suffix == ".json"),
                       key=lambda s: s["tile"])
    grid = assemble([p for p in args.indices if p.suffix == ".npz"], fc_npz)
    rows = summary_rows(grid)
    out = args.out_dir or Path()
    out.mkdir(parents=True, exist_ok=True)
    png_path = out / "drought_warning.png"
    draw(grid, region, forecast, rows, png_path)
    with (out / "drought_summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    found = checks(summaries, forecast, png_stats(png_path))

    end = time.time()
    offloaded = [(s["t0"], s["t1"]) for s in summaries] + [(forecast["t0"], forecast["t1"])]
    total = end - region["t_start"]
    busy = _union(offloaded)
    timing = {"total_s": round(total, 2), "offloaded_compute_s": round(busy, 2),
              "offloaded_share": round(busy / total, 3) if total > 0 else None,
              "index_jobs_s": round(_union(offloaded[:-1]), 2),
              "forecast_job_s": round(offloaded[-1][1] - offloaded[-1][0], 2),
              "hosts": sorted({s["host"] for s in summaries} | {forecast["host"]})}
    scale = grid["scale"]
    report: dict[str, Any] = {
        "issued": _label(grid["start_year"], grid["months"] - 1),
        "forecast_for": _label(grid["start_year"], grid["months"]),
        "scale_months": scale, "tiles": {}, "classes": {n: float(np.mean(grid["classes"] == k))
                                                       for k, n in enumerate(CLASS_NAMES)},
        "forecast_skill": forecast["skill"], "checks": found, "timing": timing,
        "outputs": {"map": where(png_path, args.out_dir), "table": where(out / "drought_summary.csv", args.out_dir)}}
    by_tile = {row["tile"]: row for row in rows}
    for s in summaries:
        row = by_tile[s["tile"]]
        report["tiles"][s["tile"]] = {
            "latest_mean_spi": s["latest_mean_spi"], "class": mckee(s["latest_mean_spi"]),
            "drought_area": s["latest_drought_fraction"], "latest_mean_spei": s["latest_mean_spei"],
            "drought_area_spei": s["latest_drought_fraction_spei"], "spei_class": mckee(s["latest_mean_spei"]),
            "forecast_spi": row["spi_next"], "forecast_spei": row["spei_next"],
            "spi_mean": s["spi_reference"]["pooled_mean"], "spi_std": s["spi_reference"]["pooled_sd"],
            "spei_mean": s["spei_reference"]["pooled_mean"], "spei_std": s["spei_reference"]["pooled_sd"],
            "warning_pct": {k: row[f"{k}_pct"] for k in CLASS_NAMES[1:]}}
    report["tiles_in_drought"] = sorted(t for t, v in report["tiles"].items() if v["latest_mean_spi"] <= -1.0)
    (out / "report.json").write_text(json.dumps(report, indent=1))

    print(f"Drought warning {report['issued']} (forecast for {report['forecast_for']}), SPI-{scale}/SPEI-{scale}:")
    header = ["tile", "elev m", f"SPI-{scale}", f"SPEI-{scale}", "fc SPI", "fc SPEI", "watch%", "warn%", "alert%",
              "class"]
    print("  " + "".join(f"{h:>9}" for h in header[:-1]) + f"  {header[-1]}")
    for r in rows:
        print(f"  {r['tile']:>9}{r['elevation_m']:>9}{r['spi_now']:>+9.2f}{r['spei_now']:>+9.2f}"
              f"{r['spi_next']:>+9.2f}{r['spei_next']:>+9.2f}{r['watch_pct']:>9.1f}{r['warning_pct']:>9.1f}"
              f"{r['alert_pct']:>9.1f}  {r['class']}")
    print("Checks:")
    for c in found:
        print(f"  [{'PASS' if c['ok'] else 'FAIL'}] {c['name']}: {json.dumps(c['value'])}")
    print(f"Run time {total:.1f} s from prepare to map; offloaded steps computing during {busy:.1f} s of it "
          f"({100 * busy / total:.0f}%) on {', '.join(timing['hosts'])}")
    if args.out_dir is not None:
        print(f"Map: {png_path.resolve()}\nTable: {(out / 'drought_summary.csv').resolve()}")
    else:  # a CWL step: this folder is the runner's scratch space, not where the files end up
        print("Map: drought_warning.png, table: drought_summary.csv, report: report.json, in the workflow's output "
              "directory (--outdir of oscar-cwl or cwltool; the runner prints their paths at the end: warning_png, "
              "summary_table, report)")
    return 0 if all(c["ok"] for c in found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
