"""Prepare step (local): a coastal scenario for one return period, generated from a seed.

Mirrors FloodAdapt's scenario preparation (there: HydroMT builds a SFINCS model from real data; here a
synthetic but plausible site): a 2 km x 2 km digital elevation model of a coastal plain with a sea
strip on the west edge, a meandering river with its mouth at the sea and hills inland; depressions are
filled (priority-flood, Barnes et al. 2014) so that rain drains to the sea as on a conditioned DEM;
Manning roughness (sea and river 0.025, open land 0.05, built-up area 0.10); a town of buildings on the
plain; and the event of return period T:

* storm tide at the sea boundary: the M2 tide plus a surge hump, peaking at the Gumbel level
  S(T) = 1.2 + 0.35 y_T m (y_T = -ln(-ln(1 - 1/T)), the reduced variate);
* rainfall of Gumbel depth R(T) = 30 + 10 y_T mm over 3 hours (a triangular hyetograph, 10-minute blocks).

The site depends only on the seed, the event only on T, so runs with several T share one site.
Usage: python3 prepare.py --return-period 100 [--seed 42] [--size 80] -> scenario_T100.npz, scenario_T100.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

DOMAIN = 2000.0  # m, square
COAST = 200.0  # m from the west edge to the shoreline
HOURS = 12.0  # simulated event
PEAK_HOUR = 5.0  # storm-tide peak
RAIN_START, RAIN_HOURS = 3.5, 3.0
M2_PERIOD, M2_AMPLITUDE = 12.42 * 3600.0, 0.8


def reduced_variate(return_period: float) -> float:
    """Gumbel reduced variate y_T of the annual maximum with return period T years."""
    if return_period <= 1.0:
        raise ValueError(f"return period must exceed 1 year, got {return_period}")
    return float(-np.log(-np.log(1.0 - 1.0 / return_period)))


def surge_peak(return_period: float) -> float:
    """Peak storm-tide level S(T), m above mean sea level."""
    return 1.2 + 0.35 * reduced_variate(return_period)


def rain_depth(return_period: float) -> float:
    """Event rainfall R(T) over RAIN_HOURS, mm."""
    return 30.0 + 10.0 * reduced_variate(return_period)


def _smooth_noise(rng: np.random.Generator, n: int, cells: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation and correlation length ``cells``."""
    k = np.fft.fftfreq(n)
    kernel = np.exp(-0.5 * (2 * np.pi * cells) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * kernel))
    return field / field.std()


def make_dem(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Bed elevation (m), river-channel mask and cell size of the synthetic site."""
    rng = np.random.default_rng(seed)
    dx = DOMAIN / n
    c = (np.arange(n) + 0.5) * dx
    y, x = np.meshgrid(c, c, indexing="ij")
    inland = x - COAST
    phase = rng.uniform(0, 2 * np.pi)
    centre = 1000.0 + 180.0 * np.sin(2 * np.pi * x / 1500.0 + phase) * np.clip(inland / 300.0, 0, 1)
    dist = np.abs(y - centre)  # from the river's axis
    # A plain rising 0.15% inland and 0.12% away from the river, then an upland with hills in the east.
    z = 1.0 + 0.0015 * inland + 0.0012 * dist + 18.0 * np.clip((x - 1250.0) / 750.0, 0, None) ** 1.6
    for _ in range(3):
        hx, hy = rng.uniform(1250, 1900), rng.uniform(200, 1800)
        z += rng.uniform(6, 14) * np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2 * rng.uniform(150, 250) ** 2))
    z += (0.05 + 0.002 * np.clip(inland - 1000.0, 0, None)) * _smooth_noise(rng, n, max(1.0, 100.0 / dx))
    # A dune ridge along the shore, its crest varying along the coast (2.5-3.5 m), cut by the river mouth.
    crest = 3.0 + 0.3 * _smooth_noise(rng, n, max(1.0, 150.0 / dx))[:, :1]
    half_width = max(30.0, dx)  # wide enough for a 4-connected channel at any cell size
    dune = crest * np.exp(-0.5 * ((inland - 60.0) / 40.0) ** 2) * (dist > half_width + 40.0)
    z = np.maximum(z, dune)
    z = np.where(inland < 0, np.minimum(z, -2.5 + 2.5 * x / COAST), z)  # the foreshore, below mean sea level
    river = (dist <= half_width) & (inland > -COAST / 2)
    z = np.where(river, z - 1.5, z)  # the channel is incised 1.5 m into its valley ...
    bed = np.where(river, z, np.inf).min(axis=0)
    bed = np.minimum.accumulate(bed[::-1])[::-1]  # ... and its bed never rises downstream (westwards)
    z = np.where(river, np.minimum(z, bed[None, :]), z)
    return fill_depressions(z, outlet=inland < 0), river & (inland >= 0), dx


def fill_depressions(z: np.ndarray, outlet: np.ndarray, eps: float = 2e-3) -> np.ndarray:
    """Priority-flood with epsilon: raise every pit so that each cell drains to an ``outlet`` cell."""
    filled = z.copy()
    done = outlet.copy()
    heap = [(float(filled[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(outlet), strict=True)]
    heapq.heapify(heap)
    ny, nx = z.shape
    while heap:
        level, i, j = heapq.heappop(heap)
        for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < ny and 0 <= b < nx and not done[a, b]:
                done[a, b] = True
                filled[a, b] = max(filled[a, b], level + eps)
                heapq.heappush(heap, (float(filled[a, b]), a, b))
    return filled


def make_buildings(seed: int, z: np.ndarray, river: np.ndarray, dx: float) -> dict[str, np.ndarray]:
    """Buildings (cell row/col, inhabitants, replacement value in EUR): a town on the plain plus farms."""
    rng = np.random.default_rng(seed + 1)
    n = z.shape[0]
    town = rng.normal([1000.0, 750.0], [280.0, 220.0], size=(420, 2))  # (y, x) in m
    farms = rng.uniform([100.0, COAST + 100], [1900.0, 1900.0], size=(80, 2))
    pts = np.vstack([town, farms])
    row, col = (pts[:, 0] // dx).astype(int), (pts[:, 1] // dx).astype(int)
    keep = (row >= 0) & (row < n) & (col >= 0) & (col < n)
    row, col = row[keep], col[keep]
    ok = (z[row, col] > 0.3) & ~river[row, col]
    row, col = row[ok], col[ok]
    people = rng.poisson(2.4, size=row.size) + 1
    value = rng.uniform(150e3, 400e3, size=row.size).round(-3)
    return {"bldg_row": row, "bldg_col": col, "bldg_people": people, "bldg_value": value}


def make_event(return_period: float) -> dict[str, np.ndarray]:
    """Sea level (every 10 min) and rainfall (10-minute blocks, m/s) over the event."""
    t = np.arange(0.0, HOURS * 3600.0 + 1.0, 600.0)
    tp = PEAK_HOUR * 3600.0
    surge = surge_peak(return_period) - M2_AMPLITUDE
    sea = M2_AMPLITUDE * np.cos(2 * np.pi * (t - tp) / M2_PERIOD) + surge * np.exp(-0.5 * ((t - tp) / 7200.0) ** 2)
    blocks = int(RAIN_HOURS * 6)
    weights = 1.0 - np.abs(np.linspace(-1, 1, blocks + 2)[1:-1])  # triangular hyetograph
    rain_rate = np.zeros_like(t)
    start = int(RAIN_START * 6)
    rain_rate[start:start + blocks] = rain_depth(return_period) / 1000.0 * weights / weights.sum() / 600.0
    return {"sea_t": t, "sea_level": sea, "rain_t": t, "rain_rate": rain_rate}


def prepare(return_period: float, seed: int, size: int, out_dir: Path) -> dict[str, Any]:
    """Write ``scenario_T<T>.npz`` (model and impact inputs) and ``scenario_T<T>.json`` (what it is)."""
    z, river, dx = make_dem(seed, size)
    event = make_event(return_period)
    h0 = np.maximum(event["sea_level"][0] - z, 0.0) * (z < 0)  # the sea and the river mouth at the start level
    manning = np.where((z < 0) | river, 0.025, 0.05)
    buildings = make_buildings(seed, z, river, dx)
    built = np.zeros(z.shape, dtype=bool)
    built[buildings["bldg_row"], buildings["bldg_col"]] = True
    manning = np.where(built, 0.10, manning)
    out_dir.mkdir(parents=True, exist_ok=True)
    land = (z > 0) & ~river  # what counts as flooded land: not the sea, the foreshore or the river channel
    np.savez_compressed(out_dir / f"scenario_T{return_period:g}.npz", dem=z, river=river, land=land,
                        manning=manning, h0=h0, dx=dx,
                        duration=HOURS * 3600.0, return_period=float(return_period), **event, **buildings)
    meta = {"return_period": float(return_period), "seed": seed, "grid": {"ny": size, "nx": size, "dx": dx},
            "peak_sea_level_m": float(event["sea_level"].max()), "rain_mm": rain_depth(return_period),
            "buildings": int(buildings["bldg_row"].size), "people": int(buildings["bldg_people"].sum()),
            "simulated_hours": HOURS}
    (out_dir / f"scenario_T{return_period:g}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--return-period", type=float, required=True, help="years")
    parser.add_argument("--seed", type=int, default=42, help="site seed")
    parser.add_argument("--size", type=int, default=80, help="cells per side (the domain is 2 km)")
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    meta = prepare(args.return_period, args.seed, args.size, args.out_dir)
    print(f"prepare: T={meta['return_period']:g} yr, peak sea level {meta['peak_sea_level_m']:.2f} m, "
          f"rain {meta['rain_mm']:.0f} mm, {meta['buildings']} buildings", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
