# Standardised Precipitation Index (SPI, McKee et al. 1993) of one tile.
# Input ($INPUT_FILE_PATH): a .npy array (months, y, x) of monthly precipitation in mm, starting in January.
# Output: spi_<tile>.npy (float32, same shape; NaN before the first full accumulation window) and
#         summary_<tile>.json. SPI_SCALE is the accumulation window in months (1, 3, 6, 12).
python3 - "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR" "${SPI_SCALE:-3}" <<'PY'
import json
import pathlib
import sys
import warnings

import numpy as np
from scipy import special, stats

src, out, scale = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
precip = np.load(src).astype("float64")
months = precip.shape[0]
if months < scale + 24:
    sys.exit(f"{src.name}: {months} months are too few for SPI-{scale}: give at least {scale + 24}")

# Precipitation accumulated over `scale` months, ending at each month.
csum = np.cumsum(precip, axis=0)
acc = np.full_like(precip, np.nan)
acc[scale - 1:] = csum[scale - 1:] - np.concatenate([np.zeros((1, *precip.shape[1:])), csum[:months - scale]])

# Per calendar month and cell: a gamma fit (Thom's maximum-likelihood estimate) of the non-zero
# accumulations, a point mass for zeros, and the cumulative probability mapped to a standard normal.
spi = np.full_like(acc, np.nan)
with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    for month in range(12):
        rows = np.arange(month, months, 12)
        rows = rows[rows >= scale - 1]
        x = acc[rows]
        wet = x > 0
        q = 1.0 - wet.sum(axis=0) / len(rows)
        xw = np.where(wet, x, np.nan)
        mean = np.nanmean(xw, axis=0)
        a = np.log(mean) - np.nanmean(np.log(xw), axis=0)
        alpha = (1 + np.sqrt(1 + 4 * a / 3)) / (4 * a)
        beta = mean / alpha
        cdf = q + (1 - q) * special.gammainc(alpha, np.where(wet, x, 0.0) / beta)
        spi[rows] = stats.norm.ppf(np.clip(cdf, 1e-6, 1 - 1e-6))

tile = src.stem
np.save(out / f"spi_{tile}.npy", spi.astype("float32"))
latest = spi[-1]
summary = {
    "tile": tile,
    "scale_months": scale,
    "months": months,
    "cells": int(latest.size),
    "latest_mean_spi": round(float(np.nanmean(latest)), 4),
    "latest_drought_fraction": round(float(np.mean(latest <= -1.0)), 4),
    "all_mean_spi": round(float(np.nanmean(spi)), 4),
    "all_std_spi": round(float(np.nanstd(spi)), 4),
}
(out / f"summary_{tile}.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary))
PY
