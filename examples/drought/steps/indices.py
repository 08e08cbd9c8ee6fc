"""Standardised drought indices of one tile: SPI and SPEI (the step offloaded to OSCAR, one job per tile).

Standalone (numpy and scipy only), so any image with python3, numpy and scipy runs it.

* **SPI** (McKee et al. 1993): precipitation accumulated over ``scale`` months; per cell and calendar
  month a gamma distribution is fitted (Thom's maximum-likelihood estimate) to the non-zero accumulations
  of the reference period, zeros get a point mass (centre-of-mass probability, Stagge et al. 2015); the
  cumulative probability is mapped to a standard normal.
* **SPEI** (Vicente-Serrano et al. 2010): the same on the climatic water balance D = P - PET, with PET
  from temperature (Thornthwaite 1948: heat index from the reference climatology, day length from the
  latitude) and a three-parameter log-logistic distribution (Hosking's generalised logistic) fitted by
  L-moments from unbiased probability-weighted moments, as the R package SPEI does.

Both are fitted on the reference period only and applied to every month. Values are bounded to
[-3.5, 3.5] (a probability of 2.3e-4 either side). Per tile the step writes ``indices_<tile>.npz``
(``spi``, ``spei`` at ``scale`` months and ``spi1``, ``spei1`` at one month, ``pet``, the temperature
anomaly ``tanom``; float32 ``(months, y, x)``) and ``summary_<tile>.json`` (reference-period statistics
per cell, the latest month, timings).

    python3 indices.py tile_00.npz [tile_01.npz ...] --scale 3 --out-dir out/
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

BOUND = 3.5
DAYS = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
MID_DOY = np.cumsum(DAYS) - DAYS / 2


def accumulate(x: np.ndarray, scale: int) -> np.ndarray:
    """Sum over ``scale`` months ending at each month (NaN before the first full window); axis 0 is time."""
    out = np.full(x.shape, np.nan)
    csum = np.cumsum(x, axis=0, dtype="float64")
    out[scale - 1:] = csum[scale - 1:]
    out[scale:] -= csum[:-scale]
    return out


def _to_normal(cdf: np.ndarray) -> np.ndarray:
    lo = special.ndtr(-BOUND)
    return special.ndtri(np.clip(cdf, lo, 1 - lo))


def _rows(months: int, month: int, first: int) -> np.ndarray:
    rows = np.arange(month, months, 12)
    return rows[rows >= first]


def gamma_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``x`` (samples on axis 0): probability of zero, gamma shape and scale (Thom 1958)."""
    wet = x > 0
    q = 1.0 - wet.sum(axis=0) / x.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        xw = np.where(wet, x, np.nan)
        mean = np.nanmean(xw, axis=0)
        a = np.log(mean) - np.nanmean(np.log(xw), axis=0)
        alpha = (1 + np.sqrt(1 + 4 * a / 3)) / (4 * a)
    return q, alpha, mean / alpha


def spi(precip: np.ndarray, scale: int, ref: np.ndarray) -> np.ndarray:
    """SPI at ``scale`` months; ``ref`` marks the months of the reference period (axis 0, from January)."""
    acc = accumulate(precip, scale)
    out = np.full(acc.shape, np.nan)
    for month in range(12):
        rows = _rows(len(acc), month, scale - 1)
        fit_rows = rows[ref[rows]]
        q, alpha, beta = gamma_fit(acc[fit_rows])
        x = acc[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            cdf = np.where(x > 0, q + (1 - q) * special.gammainc(alpha, np.maximum(x, 0) / beta), q / 2)
        cdf = np.where(np.isfinite(alpha) & (alpha > 0), cdf, np.nan)  # a cell that is always dry has no SPI
        out[rows] = _to_normal(cdf)
    return out


def loglogistic_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``x`` (samples on axis 0): location xi, scale alpha and shape k of a log-logistic.

    The three-parameter log-logistic in Hosking's generalised-logistic form, fitted by L-moments from
    unbiased probability-weighted moments: what the R package SPEI does (``pwm.ub``, ``pwm2lmom``,
    ``parglo``). k = -tau3; k < 0 is the right-skewed log-logistic of Vicente-Serrano et al. (2010) with
    shape beta = -1/k; k > 0 covers left-skewed samples, which that parameterisation cannot fit.
    """
    n = x.shape[0]
    xs = np.sort(x, axis=0)
    i = np.arange(1, n + 1).reshape((n,) + (1,) * (x.ndim - 1))
    b0 = xs.mean(axis=0)
    b1 = (xs * (i - 1) / (n - 1)).sum(axis=0) / n
    b2 = (xs * (i - 1) * (i - 2) / ((n - 1) * (n - 2))).sum(axis=0) / n
    l1, l2, l3 = b0, 2 * b1 - b0, 6 * b2 - 6 * b1 + b0
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.clip(-l3 / l2, -0.99, 0.99)
        small = np.abs(k) < 1e-6
        kk = np.where(small, 1.0, k)
        alpha = np.where(small, l2, l2 * np.sin(kk * np.pi) / (kk * np.pi))
        xi = np.where(small, l1, l1 - alpha * (1 / kk - np.pi / np.sin(kk * np.pi)))
    return xi, alpha, k


def loglogistic_cdf(x: np.ndarray, xi: np.ndarray, alpha: np.ndarray, k: np.ndarray) -> np.ndarray:
    """F(x) = 1 / (1 + exp(-y)), y = -log(1 - k (x - xi) / alpha) / k (y = (x - xi) / alpha for k = 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = (x - xi) / alpha
        small = np.abs(k) < 1e-6
        arg = 1 - k * z
        y = np.where(small, z, -np.log(np.where(arg > 0, arg, np.nan)) / np.where(small, 1.0, k))
        cdf = special.expit(y)
    # Beyond the distribution's bound (the lower one for k < 0, the upper one for k > 0): 0 or 1.
    outside = ~small & (arg <= 0)
    return np.where(outside, np.where(k < 0, 0.0, 1.0), cdf)


def spei(balance: np.ndarray, scale: int, ref: np.ndarray) -> np.ndarray:
    """SPEI at ``scale`` months of the monthly water balance P - PET (mm)."""
    acc = accumulate(balance, scale)
    out = np.full(acc.shape, np.nan)
    for month in range(12):
        rows = _rows(len(acc), month, scale - 1)
        out[rows] = _to_normal(loglogistic_cdf(acc[rows], *loglogistic_fit(acc[rows[ref[rows]]])))
    return out


def day_length(lat: np.ndarray) -> np.ndarray:
    """Mean day length (hours) at mid-month, shape (12, *lat.shape) (FAO-56 declination)."""
    decl = 0.409 * np.sin(2 * np.pi * MID_DOY / 365 - 1.39)
    phi = np.radians(lat)[None]
    omega = np.arccos(np.clip(-np.tan(phi) * np.tan(decl)[:, None, None], -1, 1))
    return 24 / np.pi * omega


def pet_thornthwaite(tavg: np.ndarray, lat: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Potential evapotranspiration (mm/month) after Thornthwaite (1948); ``tavg`` in degC from January.

    The heat index I comes from the reference-period mean of each calendar month (as in the R package SPEI).
    """
    months = len(tavg)
    cal = np.arange(months) % 12
    clim = np.stack([tavg[(cal == m) & ref].mean(axis=0) for m in range(12)])
    heat = (np.maximum(clim, 0) / 5) ** 1.514
    index = heat.sum(axis=0)
    a = 6.75e-7 * index**3 - 7.71e-5 * index**2 + 1.792e-2 * index + 0.49239
    t = np.maximum(tavg, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pet = 16 * (10 * t / index) ** a
    pet = np.where(index > 0, np.nan_to_num(pet), 0.0)
    hot = tavg >= 26.5
    pet = np.where(hot, -415.85 + 32.24 * tavg - 0.43 * tavg**2, pet)
    return pet * (day_length(lat)[cal] / 12) * (DAYS[cal] / 30)[:, None, None]


def reference_mask(months: int, start_year: int, ref_start: int, ref_end: int) -> np.ndarray:
    year = start_year + np.arange(months) // 12
    return (year >= ref_start) & (year <= ref_end)


def compute(tile: dict[str, Any], scale: int = 3) -> dict[str, np.ndarray]:
    """All indices of one tile (arrays as in ``tile_NN.npz``)."""
    precip = np.asarray(tile["precip"], "float64")
    tavg = np.asarray(tile["tavg"], "float64")
    months = len(precip)
    if months < scale + 24:
        raise ValueError(f"{months} months are too few for a {scale}-month index: give at least {scale + 24}")
    ref = reference_mask(months, int(tile["start_year"]), int(tile["ref_start"]), int(tile["ref_end"]))
    if ref.sum() < 24:
        raise ValueError("the reference period must hold at least two years")
    pet = pet_thornthwaite(tavg, np.asarray(tile["lat"], "float64"), ref)
    balance = precip - pet
    cal = np.arange(months) % 12
    t_clim = np.stack([tavg[(cal == m) & ref].mean(axis=0) for m in range(12)])
    t_sd = np.maximum(np.stack([tavg[(cal == m) & ref].std(axis=0) for m in range(12)]), 1e-6)
    return {"spi": spi(precip, scale, ref), "spei": spei(balance, scale, ref), "spi1": spi(precip, 1, ref),
            "spei1": spei(balance, 1, ref), "pet": pet, "tanom": (tavg - t_clim[cal]) / t_sd[cal], "ref": ref}


def reference_stats(index: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Per-cell mean and standard deviation over the reference period: the worst cells."""
    values = index[ref]
    mean = np.nanmean(values, axis=0)
    sd = np.nanstd(values, axis=0)
    return {"mean_of_cell_means": float(np.mean(mean)), "max_abs_cell_mean": float(np.max(np.abs(mean))),
            "mean_of_cell_sds": float(np.mean(sd)), "max_abs_cell_sd_minus_1": float(np.max(np.abs(sd - 1))),
            "pooled_mean": float(np.nanmean(values)), "pooled_sd": float(np.nanstd(values))}


def run_tile(path: Path, out_dir: Path, scale: int) -> dict[str, Any]:
    t0 = time.time()
    with np.load(path) as f:
        tile = {k: f[k] for k in f.files}
    result = compute(tile, scale)
    name = path.stem
    ref = result["ref"]
    np.savez(out_dir / f"indices_{name}.npz", **{k: result[k].astype("float32") for k in
                                                  ("spi", "spei", "spi1", "spei1", "pet", "tanom")},
             ref=ref, elevation=tile["elevation"], lat=tile["lat"], lon=tile["lon"], tile=tile["tile"],
             row0=tile["row0"], col0=tile["col0"], start_year=tile["start_year"], scale=scale)
    latest_spi, latest_spei = result["spi"][-1], result["spei"][-1]
    summary = {
        "tile": name, "scale_months": scale, "months": len(ref), "cells": int(latest_spi.size),
        "reference_months": int(ref.sum()),
        "latest_mean_spi": round(float(np.nanmean(latest_spi)), 4),
        "latest_mean_spei": round(float(np.nanmean(latest_spei)), 4),
        "latest_drought_fraction": round(float(np.mean(latest_spi <= -1.0)), 4),
        "latest_drought_fraction_spei": round(float(np.mean(latest_spei <= -1.0)), 4),
        "spi_reference": {k: round(v, 4) for k, v in reference_stats(result["spi"], ref).items()},
        "spei_reference": {k: round(v, 4) for k, v in reference_stats(result["spei"], ref).items()},
        "annual_pet_mm": round(float(result["pet"][ref].sum(axis=0).mean() / (ref.sum() / 12)), 1),
        "host": socket.gethostname(), "pid": os.getpid(), "t0": t0, "t1": time.time(),
    }
    (out_dir / f"summary_{name}.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tiles", nargs="+", type=Path, help="tile_NN.npz files of the prepare step")
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SPI_SCALE", "3")),
                        help="accumulation window in months (1, 3, 6, 12; default $SPI_SCALE or 3)")
    parser.add_argument("--out-dir", type=Path, default=Path())
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for path in args.tiles:
        s = run_tile(path, args.out_dir, args.scale)
        summaries.append(s)
        print(f"indices {s['tile']}: SPI-{args.scale} {s['latest_mean_spi']:+.2f}, SPEI-{args.scale} "
              f"{s['latest_mean_spei']:+.2f} (latest month, tile mean); reference period per cell: SPI mean "
              f"within {s['spi_reference']['max_abs_cell_mean']:.3f} of 0, sd within "
              f"{s['spi_reference']['max_abs_cell_sd_minus_1']:.3f} of 1; SPEI "
              f"{s['spei_reference']['max_abs_cell_mean']:.3f}, {s['spei_reference']['max_abs_cell_sd_minus_1']:.3f}; "
              f"{s['t1'] - s['t0']:.2f} s on {s['host']}",
              flush=True)
    return summaries


if __name__ == "__main__":
    main()
