"""Synthetic Alpine monthly climate (precipitation and temperature) on a grid, split into tiles.

Standalone (numpy and scipy); the prepare step of the drought example, run locally. It stands where EURAC's
workflow reads E-OBS-like gridded observations. From a seed it builds:

* a region of ``rows x cols`` tiles of ``tile_size`` cells of 5 km, centred on the Eastern Alps near
  Bolzano (46.6 N, 11.3 E), with a main crest running west-east at 46.95 N (peaks ~3500 m), inner valleys
  and a low southern foreland;
* monthly mean temperature: a sea-level climatology, a seasonal lapse rate (4.5 K/km in winter, 6.5 K/km in
  summer: winter inversions), a latitude gradient, a warming trend of 0.45 K per decade and persistent,
  regionally coherent anomalies, warm in dry summers;
* monthly precipitation: a north-Alpine regime (summer maximum) north of the crest and a south-Alpine regime
  (spring and autumn maxima) south of it, +5 % per 100 m of elevation, gamma-distributed monthly totals
  (shape 2 in winter to 3 in summer) correlated in space through a Gaussian copula (a regional field of
  ~120 km plus local ~15 km cells) and weakly in time;
* a drought storyline in the last six months: a precipitation deficit centred on the south-east of the
  region, intensifying month by month, with a heat anomaly of up to +2.5 K (like the Alpine 2022 drought).

One ``tile_NN.npz`` per tile (``precip`` mm/month, ``tavg`` degC, shape ``(months, y, x)``; ``elevation``,
``lat``, ``lon``; dates, reference period and the tile's place) and ``region.json``.

    python3 climate.py --tiles 6 --tile-size 20 --years 35 --seed 7 --out-dir .
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

CELL_KM = 5.0
CENTRE = (46.6, 11.3)  # lat, lon (Bolzano, EURAC)
CREST_LAT = 46.95
#: Sea-level monthly mean temperature (degC), Jan..Dec (Alpine forelands, lapse-rate corrected).
T_SEA = np.array([1.5, 3.5, 7.5, 11.5, 16.0, 19.5, 21.5, 21.0, 17.0, 12.0, 6.5, 2.5])
#: Lapse rate (K/km) per calendar month: shallow in winter (valley inversions), steep in summer.
LAPSE = np.array([4.5, 5.0, 5.7, 6.3, 6.5, 6.5, 6.5, 6.4, 6.0, 5.5, 5.0, 4.6])
#: Standard deviation of monthly temperature anomalies (K), Jan..Dec.
T_SD = np.array([2.0, 2.0, 1.6, 1.3, 1.2, 1.2, 1.2, 1.3, 1.2, 1.2, 1.5, 1.8])
#: Monthly precipitation (mm) at 500 m: north-Alpine regime (Innsbruck-like, summer maximum) ...
P_NORTH = np.array([55.0, 50.0, 60.0, 70.0, 95.0, 125.0, 140.0, 130.0, 90.0, 70.0, 75.0, 65.0])
#: ... and south-Alpine regime (Bolzano/Trento-like, spring and autumn maxima, dry winter).
P_SOUTH = np.array([30.0, 30.0, 45.0, 65.0, 90.0, 85.0, 85.0, 90.0, 80.0, 95.0, 90.0, 40.0])
WARMING = 0.045  # K per year
STORY_MONTHS = 6
STORY_DEPTH = np.array([0.6, 0.9, 1.2, 1.4, 1.6, 1.8])  # regional precipitation anomaly (normal scores)
STORY_HEAT = 2.5  # K at the centre of the drought in the last month


def layout(tiles: int) -> tuple[int, int]:
    """Rows and columns of tiles: the most nearly square factorisation (6 -> 2 x 3, 3 -> 1 x 3)."""
    rows = max(d for d in range(1, math.isqrt(tiles) + 1) if tiles % d == 0)
    return rows, tiles // rows


def _interp_matrix(n_fine: int, n_coarse: int, step: float) -> np.ndarray:
    """Linear interpolation from a coarse axis (spacing ``step`` fine cells) to ``n_fine`` cells."""
    pos = np.arange(n_fine) / step
    lo = np.clip(np.floor(pos).astype(int), 0, n_coarse - 2)
    w = pos - lo
    m = np.zeros((n_fine, n_coarse))
    m[np.arange(n_fine), lo] = 1 - w
    m[np.arange(n_fine), lo + 1] = w
    return m


def _smooth_noise(rng: np.random.Generator, n: int, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """``n`` Gaussian random fields of unit variance with correlation length ``sigma`` cells.

    Filtered white noise (FFT, padded so that it does not wrap) on a grid ``sigma / 4`` times coarser than
    the cells, interpolated linearly: a field this smooth needs no more, and it is fast.
    """
    step = max(1.0, sigma / 4)
    s = sigma / step
    cy, cx = int(np.ceil((shape[0] - 1) / step)) + 2, int(np.ceil((shape[1] - 1) / step)) + 2
    pad = int(3 * s) + 1
    ny, nx = cy + 2 * pad, cx + 2 * pad
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    gain = np.exp(-2 * (np.pi * s) ** 2 * (kx**2 + ky**2))  # Gaussian kernel in spectral space
    coarse = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, ny, nx))) * gain, s=(ny, nx))
    coarse = coarse[:, pad:pad + cy, pad:pad + cx]
    field = np.einsum("yi,nij,xj->nyx", _interp_matrix(shape[0], cy, step), coarse,
                      _interp_matrix(shape[1], cx, step), optimize=True)
    return field / field.std()


def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.6) -> np.ndarray:
    """A fractal (power-law spectrum) surface scaled to [0, 1]: the texture of the mountains."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2)
    amp[0, 0] = 0.0
    amp[k < 1.0 / max(ny, nx)] *= 0.3  # damp the wavelengths longer than the region
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field = np.fft.irfft2(amp * np.exp(1j * phase), s=shape)
    return (field - field.min()) / (field.max() - field.min())


def terrain(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (m), latitude and longitude of every cell (row 0 is the north edge)."""
    ny, nx = shape
    dlat = CELL_KM / 111.2
    dlon = CELL_KM / (111.2 * math.cos(math.radians(CENTRE[0])))
    lat = CENTRE[0] + (ny / 2 - 0.5 - np.arange(ny))[:, None] * dlat + np.zeros((1, nx))
    lon = CENTRE[1] + (np.arange(nx) - nx / 2 + 0.5)[None, :] * dlon + np.zeros((ny, 1))
    # Margins of one region-width, so that the texture does not repeat across the edges.
    texture = _fractal(rng, (2 * ny + 16, 2 * nx + 16))[ny // 2 + 8:ny // 2 + 8 + ny, nx // 2 + 8:nx // 2 + 8 + nx]
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    ridges = 1.0 - np.abs(2.0 * texture - 1.0)  # crests along the middle values, valleys at both ends
    crest = np.exp(-(((lat - CREST_LAT) / 0.45) ** 2))  # the main chain, ~50 km half-width
    foreland = np.clip((lat - 45.6) / 0.8, 0.0, 1.0)  # low plain in the far south
    mountains = 3000 * crest * (0.25 + 0.75 * ridges**1.5) * (0.5 + 0.5 * texture)
    z = 120 + 400 * foreland + 600 * texture * foreland + mountains
    return z.astype("float64"), lat, lon


def generate(tiles: int = 6, tile_size: int = 20, years: int = 35, seed: int = 7, end_month: int = 8,
             start_year: int = 1991) -> dict[str, Any]:
    """The whole region: arrays ``precip``, ``tavg`` (months, y, x), ``elevation``, ``lat``, ``lon`` and metadata."""
    if years < 3 or not 1 <= end_month <= 12:
        raise ValueError("need at least 3 years and 1 <= end_month <= 12")
    rng = np.random.default_rng(seed)
    rows, cols = layout(tiles)
    ny, nx = rows * tile_size, cols * tile_size
    months = 12 * (years - 1) + end_month
    cal = np.arange(months) % 12
    year = start_year + np.arange(months) // 12
    z, lat, lon = terrain(rng, (ny, nx))

    # Precipitation: climatology, then gamma marginals through a Gaussian copula.
    north = 1.0 / (1.0 + np.exp(-(lat - CREST_LAT) / 0.12))
    orographic = np.clip(1.0 + 0.0005 * (z - 500.0), 0.6, None)
    p_mean = (north * P_NORTH[:, None, None] + (1 - north) * P_SOUTH[:, None, None]) * orographic  # (12, y, x)
    shape_k = 2.5 - 0.5 * np.cos(2 * np.pi * np.arange(12) / 12)  # 2 in January ... 3 in July

    regional = _smooth_noise(rng, months, (ny, nx), sigma=120 / CELL_KM)
    local = _smooth_noise(rng, months, (ny, nx), sigma=15 / CELL_KM)
    t_regional = _smooth_noise(rng, months, (ny, nx), sigma=200 / CELL_KM)
    t_local = rng.standard_normal((months, ny, nx))

    # The storyline: the regional weather of the last months is prescribed (a drought in the south-east).
    yy, xx = np.mgrid[0:ny, 0:nx]
    centre = (0.75 * ny, 0.85 * nx)
    severity = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * (0.35 * math.hypot(ny, nx)) ** 2))
    story = slice(months - STORY_MONTHS, months)
    regional[story] = -severity[None] * STORY_DEPTH[:, None, None]

    rho, phi = 0.7, 0.15
    innov = math.sqrt(rho) * regional + math.sqrt(1 - rho) * local
    score = np.empty_like(innov)
    score[0] = innov[0]
    for t in range(1, months):  # weak month-to-month persistence (AR(1), unit variance)
        score[t] = phi * score[t - 1] + math.sqrt(1 - phi**2) * innov[t]
    score[story] = innov[story]  # the storyline is exactly the prescribed anomaly plus local weather
    u = np.clip(special.ndtr(score), 1e-9, 1 - 1e-9)
    k = shape_k[cal][:, None, None]
    precip = special.gammaincinv(k, u) * p_mean[cal] / k

    # Temperature: climatology, lapse rate, latitude, trend, persistent anomalies coupled to dryness.
    lapse = LAPSE[cal][:, None, None] / 1000.0
    t_clim = T_SEA[cal][:, None, None] - lapse * z[None] - 0.6 * (lat[None] - CENTRE[0])
    coupling = -0.3 - 0.3 * np.cos(2 * np.pi * (cal - 6) / 12)  # -0.6 K per unit dryness in July, 0 in January
    shocks = 0.9 * t_regional + 0.3 * t_local
    anomaly = np.empty_like(shocks)
    anomaly[0] = shocks[0]
    for t in range(1, months):
        anomaly[t] = 0.5 * anomaly[t - 1] + math.sqrt(1 - 0.25) * shocks[t]
    anomaly = anomaly * T_SD[cal][:, None, None] + coupling[:, None, None] * math.sqrt(rho) * regional
    anomaly[story] += STORY_HEAT * severity[None] * (STORY_DEPTH / STORY_DEPTH[-1])[:, None, None]
    tavg = t_clim + anomaly + WARMING * (year - (start_year + years / 2))[:, None, None]

    ref_end = min(start_year + 29, start_year + years - 2)  # WMO 1991-2020, or all complete years but the last
    return {"precip": precip.astype("float32"), "tavg": tavg.astype("float32"), "elevation": z.astype("float32"),
            "lat": lat.astype("float32"), "lon": lon.astype("float32"), "rows": rows, "cols": cols,
            "tile_size": tile_size, "start_year": start_year, "months": months, "end_month": end_month,
            "ref_start": start_year, "ref_end": ref_end, "seed": seed, "severity": severity.astype("float32")}


def write_tiles(region: dict[str, Any], out_dir: Path) -> list[Path]:
    """One ``tile_NN.npz`` per tile (row-major from the north-west) and ``region.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    s, paths = region["tile_size"], []
    for r in range(region["rows"]):
        for c in range(region["cols"]):
            t = r * region["cols"] + c
            cut = (slice(r * s, (r + 1) * s), slice(c * s, (c + 1) * s))
            path = out_dir / f"tile_{t:02d}.npz"
            np.savez(path, precip=region["precip"][:, cut[0], cut[1]], tavg=region["tavg"][:, cut[0], cut[1]],
                     elevation=region["elevation"][cut], lat=region["lat"][cut], lon=region["lon"][cut],
                     tile=t, row0=r * s, col0=c * s, start_year=region["start_year"], start_month=1,
                     ref_start=region["ref_start"], ref_end=region["ref_end"], cell_km=CELL_KM)
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=6)
    parser.add_argument("--tile-size", type=int, default=20, help="cells (5 km) per tile side")
    parser.add_argument("--years", type=int, default=35, help="from January 1991")
    parser.add_argument("--end-month", type=int, default=8, help="last month of the record (1-12)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=Path())
    args = parser.parse_args(argv)
    started = time.time()
    region = generate(args.tiles, args.tile_size, args.years, args.seed, args.end_month)
    paths = write_tiles(region, args.out_dir)
    last_year = region["start_year"] + (region["months"] - 1) // 12
    meta = {key: region[key] for key in ("rows", "cols", "tile_size", "start_year", "months", "end_month",
                                         "ref_start", "ref_end", "seed")}
    meta.update({"tiles": len(paths), "cell_km": CELL_KM, "end": f"{last_year}-{region['end_month']:02d}",
                 "elevation_range_m": [round(float(f(region["elevation"]))) for f in (np.min, np.max)],
                 "mean_annual_precip_mm": round(float(region["precip"].mean() * 12)),
                 "t_start": started, "seconds": round(time.time() - started, 3)})
    (args.out_dir / "region.json").write_text(json.dumps(meta, indent=1))
    print(f"prepare: {len(paths)} tiles ({region['rows']} x {region['cols']}) of {args.tile_size} x {args.tile_size}"
          f" cells, {region['months']} months from {region['start_year']}-01 to {meta['end']}; reference period "
          f"{region['ref_start']}-{region['ref_end']}; elevation {meta['elevation_range_m'][0]}-"
          f"{meta['elevation_range_m'][1]} m")
    return meta


if __name__ == "__main__":
    main()
