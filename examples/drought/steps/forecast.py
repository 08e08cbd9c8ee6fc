"""Surrogate drought forecaster: next month's SPI and SPEI from lagged indices and temperature (on OSCAR).

Standalone (numpy only). It stands where EURAC's workflow trains and runs the hython LSTM (with itwinai) to
emulate Wflow soil moisture; here the model is a ridge regression, trained on every cell of every tile:

* features at month t (per cell): SPI and SPEI at the index scale, one-month SPI and SPEI at t and t-1
  (what is already known of the next window), the standardised temperature anomaly at t and t-1, the
  elevation, and the season of t+1 (sine and cosine) with its products with the scale-length indices
  (persistence that depends on the season);
* targets: SPI and SPEI at the index scale at t+1 (one month ahead);
* verification out of sample, time-ordered: trained on the first three quarters of the record (ridge
  penalty chosen on their last fifth), verified on the last quarter (whole years, at least one; it holds
  the drought storyline) against persistence (index(t+1) = index(t)) and climatology (0), with the
  mean-squared-error skill score 1 - MSE / MSE_reference;
* the forecast: the model refitted on the whole record (same penalty), applied to the last month, per cell.

Writes ``forecast.npz`` (``spi_next_<tile>``, ``spei_next_<tile>`` per tile) and ``forecast.json``
(skill, penalty, coefficients, periods, timings).

    python3 forecast.py indices_tile_00.npz indices_tile_01.npz ... --out-dir out/
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ["spi", "spei", "spi1", "spi1_lag1", "spei1", "spei1_lag1", "tanom", "tanom_lag1", "elevation_km",
            "season_sin", "season_cos", "spi_x_sin", "spi_x_cos", "spei_x_sin", "spei_x_cos"]
TARGETS = ["spi", "spei"]
PENALTIES = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def load(paths: list[Path]) -> dict[str, Any]:
    """The indices of all tiles, stacked along cells: arrays (months, cells)."""
    tiles: list[dict[str, Any]] = []
    for path in sorted(paths, key=lambda p: p.name):
        with np.load(path) as f:
            tiles.append({k: f[k] for k in f.files} | {"name": path.stem.removeprefix("indices_")})
    data: dict[str, Any] = {"tiles": [t["name"] for t in tiles], "shapes": [t["elevation"].shape for t in tiles],
                            "ref": tiles[0]["ref"], "start_year": int(tiles[0]["start_year"]),
                            "scale": int(tiles[0]["scale"])}
    for key in ("spi", "spei", "spi1", "spei1", "tanom"):
        data[key] = np.concatenate([t[key].reshape(len(t[key]), -1) for t in tiles], axis=1).astype("float64")
    data["elevation"] = np.concatenate([t["elevation"].ravel() for t in tiles]).astype("float64")
    return data


def design(data: dict[str, Any], t: np.ndarray) -> np.ndarray:
    """Feature matrix for issue months ``t`` (forecasting t+1): shape (len(t), cells, features)."""
    cells = data["spi"].shape[1]
    target_month = (t + 1) % 12
    sin = np.broadcast_to(np.sin(2 * np.pi * target_month / 12)[:, None], (len(t), cells))
    cos = np.broadcast_to(np.cos(2 * np.pi * target_month / 12)[:, None], (len(t), cells))
    spi, spei = data["spi"][t], data["spei"][t]
    cols = [spi, spei, data["spi1"][t], data["spi1"][t - 1], data["spei1"][t], data["spei1"][t - 1],
            data["tanom"][t], data["tanom"][t - 1], np.broadcast_to(data["elevation"] / 1000, (len(t), cells)),
            sin, cos, spi * sin, spi * cos, spei * sin, spei * cos]
    return np.stack(cols, axis=-1)


def fit_ridge(x: np.ndarray, y: np.ndarray, penalties: list[float]) -> list[dict[str, np.ndarray]]:
    """Ridge regressions on standardised features (unpenalised intercept), one per penalty; x (n, p), y (n, k).

    One pass over the data (the moments), then a small solve per penalty.
    """
    n = len(x)
    mu, y_mu = x.mean(axis=0), y.mean(axis=0)
    cov = x.T @ x / n - np.outer(mu, mu)
    cross = x.T @ y / n - np.outer(mu, y_mu)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    sd[sd < 1e-12] = 1.0
    corr, cross_s = cov / np.outer(sd, sd), cross / sd[:, None]
    return [{"mu": mu, "sd": sd, "y_mu": y_mu,
             "coef": np.linalg.solve(corr + penalty * np.eye(len(corr)), cross_s)} for penalty in penalties]


def predict(model: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return ((x - model["mu"]) / model["sd"]) @ model["coef"] + model["y_mu"]


def _samples(data: dict[str, Any], t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (cell-months) with complete features and targets: x, y, the persistence forecast, the issue month."""
    x = design(data, t).reshape(-1, len(FEATURES))
    y = np.stack([data[k][t + 1] for k in TARGETS], axis=-1).reshape(-1, len(TARGETS))
    persistence = np.stack([data[k][t] for k in TARGETS], axis=-1).reshape(-1, len(TARGETS))
    month = np.repeat(t, data["spi"].shape[1])
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    return x[ok], y[ok], persistence[ok], month[ok]


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(((a - b) ** 2).mean(axis=0))


def train_and_forecast(data: dict[str, Any]) -> dict[str, Any]:
    months = data["spi"].shape[0]
    first = data["scale"]  # t - 1 must have a full window at every scale used
    issue = np.arange(first, months - 1)
    test_years = max(1, round(months / 12 / 4))
    boundary = 12 * ((months - 1) // 12 - test_years + 1)  # first target month of the verification years
    train_t, test_t = issue[issue + 1 < boundary], issue[issue + 1 >= boundary]
    if len(train_t) < 36:
        raise ValueError(f"{months} months are too few to train and verify the forecaster: give at least 5 years")
    split = train_t[int(0.8 * len(train_t))]
    x_all, y_all, pers_all, month = _samples(data, issue)
    train, test = month < train_t[-1] + 1, month >= test_t[0]
    fit, val = month < split, train & (month >= split)
    x_val, y_val = x_all[val], y_all[val]
    models = fit_ridge(x_all[fit], y_all[fit], PENALTIES)
    scores = {p: float(_mse(predict(m, x_val), y_val).mean()) for p, m in zip(PENALTIES, models, strict=True)}
    penalty = min(scores, key=scores.__getitem__)
    x, y = x_all[train], y_all[train]
    (model,) = fit_ridge(x, y, [penalty])
    tx, ty, tpers = x_all[test], y_all[test], pers_all[test]
    pred = predict(model, tx)
    (model,) = fit_ridge(x_all, y_all, [penalty])  # for the forecast: everything we know
    mse_model, mse_pers, mse_clim = _mse(pred, ty), _mse(tpers, ty), _mse(np.zeros_like(ty), ty)
    skill = {}
    for j, name in enumerate(TARGETS):
        skill[name] = {"rmse_model": float(np.sqrt(mse_model[j])), "rmse_persistence": float(np.sqrt(mse_pers[j])),
                       "rmse_climatology": float(np.sqrt(mse_clim[j])),
                       "skill_vs_persistence": float(1 - mse_model[j] / mse_pers[j]),
                       "skill_vs_climatology": float(1 - mse_model[j] / mse_clim[j]),
                       "correlation": float(np.corrcoef(pred[:, j], ty[:, j])[0, 1])}
    last = np.array([months - 1])
    x_last = design(data, last)[0]
    next_values = predict(model, np.nan_to_num(x_last))
    next_values[~np.isfinite(x_last).all(axis=1)] = np.nan
    year = data["start_year"] + np.arange(months + 1) // 12
    label = [f"{y}-{m % 12 + 1:02d}" for m, y in enumerate(year)]
    return {"model": model, "penalty": penalty, "validation_mse": scores, "skill": skill, "next": next_values,
            "train": [label[int(train_t[0]) + 1], label[int(train_t[-1]) + 1]],
            "test": [label[int(test_t[0]) + 1], label[int(test_t[-1]) + 1]],
            "issued": label[months - 1], "target": label[months], "samples": {"train": len(x), "test": len(tx)}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("indices", nargs="+", type=Path, help="indices_<tile>.npz of the indices step")
    parser.add_argument("--out-dir", type=Path, default=Path())
    args = parser.parse_args(argv)
    t0 = time.time()
    paths = [p for p in args.indices if p.suffix == ".npz"]
    data = load(paths)
    result = train_and_forecast(data)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    arrays, offset = {}, 0
    for name, shape in zip(data["tiles"], data["shapes"], strict=True):
        size = int(np.prod(shape))
        for j, target in enumerate(TARGETS):
            arrays[f"{target}_next_{name}"] = result["next"][offset:offset + size, j].reshape(shape).astype("float32")
        offset += size
    np.savez(args.out_dir / "forecast.npz", **arrays)
    coef = result["model"]["coef"]
    summary = {
        "model": "ridge regression (numpy), one month ahead", "features": FEATURES, "targets": TARGETS,
        "scale_months": data["scale"], "penalty": result["penalty"], "validation_mse": result["validation_mse"],
        "coefficients": {t: dict(zip(FEATURES, map(float, coef[:, j]), strict=True)) for j, t in enumerate(TARGETS)},
        "trained_on": result["train"], "verified_on": result["test"], "samples": result["samples"],
        "issued": result["issued"], "target_month": result["target"], "skill": result["skill"],
        "tiles": data["tiles"], "host": socket.gethostname(), "pid": os.getpid(), "t0": t0, "t1": time.time(),
    }
    (args.out_dir / "forecast.json").write_text(json.dumps(summary, indent=1))
    for target, s in result["skill"].items():
        print(f"forecast {target.upper()}-{data['scale']} one month ahead, verified {result['test'][0]}.."
              f"{result['test'][1]}: RMSE {s['rmse_model']:.3f} (persistence {s['rmse_persistence']:.3f}, climatology "
              f"{s['rmse_climatology']:.3f}); skill vs persistence {s['skill_vs_persistence']:+.2f}", flush=True)
    print(f"forecast: issued {result['issued']} for {result['target']}, ridge penalty {result['penalty']:g}, "
          f"{summary['samples']['train']} training samples, {summary['t1'] - t0:.2f} s on {summary['host']}")
    return summary


if __name__ == "__main__":
    main()
