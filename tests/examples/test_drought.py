"""The drought example: the science (unit tests), then the workflow end to end at a small size.

End to end on the session's local cluster: the CWL workflow through ``oscar-cwl`` (index and forecaster steps
offloaded) and plain ``cwltool`` (same results), the Airflow DAG with ``airflow dags test`` in an isolated
AIRFLOW_HOME, and the FDL services on their own. Each run asserts the physical checks.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scipy import special, stats

from tests.examples.steps import load_step

DROUGHT = Path(__file__).resolve().parents[2] / "examples" / "drought"
BIN = Path(sys.executable).parent
#: Small but real: 3 tiles of 12 x 12 cells (5 km), 20 years (reference period 1991-2009, record to Aug 2010).
SMALL = {"tiles": 3, "tile_size": 12, "years": 20}


def _load(path: Path) -> ModuleType:
    return load_step(path, "drought_example")


climate = _load(DROUGHT / "steps" / "climate.py")
indices = _load(DROUGHT / "steps" / "indices.py")
forecast = _load(DROUGHT / "steps" / "forecast.py")
warning_map = _load(DROUGHT / "steps" / "warning_map.py")


# -- the indices ------------------------------------------------------------------------------------------
def test_spi_of_gamma_precipitation_is_standard_normal_in_and_out_of_sample():
    rng = np.random.default_rng(0)
    years, cells = 60, 40
    season = 60 + 40 * np.sin(2 * np.pi * np.arange(12) / 12)
    precip = rng.gamma(2.5, np.tile(season, years)[:, None] / 2.5, size=(12 * years, cells))
    ref = np.arange(12 * years) < 12 * 30  # fitted on the first 30 years
    spi = indices.spi(precip, 1, ref)
    inside, outside = spi[ref], spi[~ref]
    assert np.abs(inside.mean(axis=0)).max() < 0.01 and np.abs(inside.std(axis=0) - 1).max() < 0.01
    # Out of sample (next 30 years, same climate): standard normal up to the error of a 30-value fit, which
    # widens the spread by ~7% (the shape's small-sample bias; the same with exact gamma samples).
    assert abs(outside.mean()) < 0.05 and 1.0 < outside.std() < 1.1
    assert stats.kstest(outside.ravel(), "norm").statistic < 0.04
    spi3 = indices.spi(precip, 3, ref)
    assert np.isnan(spi3[:2]).all() and np.isfinite(spi3[2:]).all()
    assert abs(np.nanmean(spi3[ref])) < 0.01 and abs(np.nanstd(spi3[ref]) - 1) < 0.01


def test_spi_gives_dry_months_the_centre_of_their_probability_mass():
    rng = np.random.default_rng(1)
    precip = rng.gamma(2.0, 30.0, size=(12 * 30, 5))
    precip[rng.random(precip.shape) < 0.1] = 0.0
    ref = np.ones(len(precip), bool)
    spi = indices.spi(precip, 1, ref)
    january = np.arange(0, len(precip), 12)
    q = np.mean(precip[january] == 0, axis=0)
    zero = precip[january] == 0
    expected = special.ndtri(np.broadcast_to(q / 2, zero.shape))[zero]
    assert np.allclose(spi[january][zero], expected)
    assert abs(spi.mean()) < 0.03 and abs(spi.std() - 1) < 0.03


@pytest.mark.parametrize("sign", [1, -1])
def test_log_logistic_fit_recovers_the_distribution(sign):
    """L-moment fit of the generalised logistic: right-skewed (Vicente-Serrano's log-logistic) and left-skewed."""
    dist = stats.fisk(c=8.0, loc=-150.0, scale=300.0)
    x = sign * dist.rvs(size=(4000, 3), random_state=np.random.default_rng(2))
    xi, alpha, k = indices.loglogistic_fit(x)
    if sign == 1:
        assert np.allclose(-1 / k, 8.0, rtol=0.1)  # beta = -1/k
    grid = np.linspace(-600, 600, 121)[:, None] * np.ones((1, 3))
    truth = dist.cdf(grid) if sign == 1 else dist.sf(-grid)
    assert np.abs(indices.loglogistic_cdf(grid, xi, alpha, k) - truth).max() < 0.02
    z = special.ndtri(np.clip(indices.loglogistic_cdf(x, xi, alpha, k), 1e-9, 1 - 1e-9))
    assert np.abs(z.mean(axis=0)).max() < 0.03 and np.abs(z.std(axis=0) - 1).max() < 0.03


def test_thornthwaite_pet_matches_the_formula_and_the_season():
    # Constant 20 degC on the equator: day length 12 h, I = 12 (20/5)^1.514, PET = 16 (10 T / I)^a (days / 30).
    months = 24
    tavg = np.full((months, 1, 1), 20.0)
    pet = indices.pet_thornthwaite(tavg, np.zeros((1, 1)), np.ones(months, bool))
    heat = 12 * 4**1.514
    a = 6.75e-7 * heat**3 - 7.71e-5 * heat**2 + 1.792e-2 * heat + 0.49239
    expected = 16 * (200 / heat) ** a * indices.DAYS / 30
    assert np.allclose(pet[:12, 0, 0], expected, rtol=0.01)
    # An Alpine valley at 46.5 N: nothing below 0 degC, a summer peak, 550-800 mm a year.
    t_valley = np.tile([0.0, 2.5, 7.5, 11.5, 16.0, 19.5, 21.5, 21.0, 17.0, 11.0, 5.0, 0.5], 3)[:, None, None]
    pet = indices.pet_thornthwaite(t_valley - 1, np.full((1, 1), 46.5), np.ones(36, bool))[:12, 0, 0]
    assert pet[0] == 0.0 and pet.argmax() in (6, 7) and 550 < pet.sum() < 800


# -- the synthetic climate --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def region() -> dict[str, Any]:
    return climate.generate(tiles=6, tile_size=16, years=30, seed=3)  # 160 km x 240 km


def test_climate_has_alpine_seasonality_elevation_and_the_storyline(region):
    p, t, z, lat = region["precip"], region["tavg"], region["elevation"], region["lat"]
    months = len(p)
    clim = np.stack([p[m::12].mean(axis=0) for m in range(12)])
    north, south = lat > climate.CREST_LAT + 0.15, lat < climate.CREST_LAT - 0.6
    low = z < np.quantile(z, 0.5)
    # North of the crest a summer maximum; south of it dry winters and a wet autumn.
    assert clim[5:8][:, north & low].mean() > 1.7 * clim[[11, 0, 1]][:, north & low].mean()
    assert clim[8:11][:, south].mean() > 1.7 * clim[[11, 0, 1]][:, south].mean()
    # More precipitation higher up; temperature falls with elevation by a lapse rate of 4.5-6.5 K/km.
    assert np.corrcoef(z.ravel(), p.mean(axis=0).ravel())[0, 1] > 0.6
    for month, lo, hi in ((0, 4.0, 5.5), (6, 5.8, 7.2)):
        slope = np.polyfit(z.ravel() / 1000, t[month::12].mean(axis=0).ravel(), 1)[0]
        assert lo < -slope < hi, (month, slope)
    assert 100 < z.min() < 600 and 2500 < z.max() < 3800
    assert months == 12 * 29 + 8 and region["ref_end"] == 2019  # all complete years but the last
    # The storyline: the last summer is dry and hot in the south-east, near normal in the north-west.
    ny, nx = z.shape
    se, nw = (slice(ny // 2, None), slice(2 * nx // 3, None)), (slice(0, ny // 3), slice(0, nx // 3))
    last3 = p[-3:].sum(axis=0) / sum(clim[m] for m in (5, 6, 7))
    assert last3[se].mean() < 0.6 and last3[nw].mean() > last3[se].mean() + 0.2
    august = t[7::12]
    heat = august[-1] - august[:-1].mean(axis=0)
    assert heat[se].mean() > heat[nw].mean() + 1.0
    assert climate.generate(tiles=2, tile_size=4, years=4, seed=9)["precip"].tobytes() == \
        climate.generate(tiles=2, tile_size=4, years=4, seed=9)["precip"].tobytes()


def test_tile_layout_is_nearly_square():
    assert [climate.layout(n) for n in (1, 3, 4, 6, 7, 12)] == [(1, 1), (1, 3), (2, 2), (2, 3), (1, 7), (3, 4)]


@pytest.fixture(scope="module")
def tile_indices(region, tmp_path_factory) -> list[Path]:
    """The prepare and index steps on the synthetic region (in-process)."""
    out = tmp_path_factory.mktemp("drought-indices")
    tiles = climate.write_tiles(region, out / "tiles")
    for tile in tiles:
        indices.run_tile(tile, out, 3)
    return sorted(out.glob("indices_*.npz"))


def test_spi_and_spei_are_standard_normal_per_cell_over_the_reference_period(tile_indices):
    for path in tile_indices:
        with np.load(path) as f:
            for key in ("spi", "spei", "spi1", "spei1"):
                s = indices.reference_stats(f[key], f["ref"])
                # Fitted there: only the misfit of the distribution to 29 values per calendar month remains.
                assert s["max_abs_cell_mean"] < 0.05 and s["max_abs_cell_sd_minus_1"] < 0.06, (path.name, key, s)


def test_forecaster_beats_persistence_and_climatology(tile_indices):
    result = forecast.train_and_forecast(forecast.load(tile_indices))
    for target in ("spi", "spei"):
        s = result["skill"][target]
        assert s["skill_vs_persistence"] > 0.2 and s["skill_vs_climatology"] > 0.4, (target, s)
    assert result["train"] == ["1991-05", "2013-12"] and result["test"] == ["2014-01", "2020-08"]  # last quarter
    assert result["target"] == "2020-09" and np.isfinite(result["next"]).all()


def test_warning_classes():
    spi_now = np.array([0.0, -1.2, -0.5, -1.2, -1.2, -2.5, np.nan])
    spei_now = np.array([0.0, -0.5, -0.5, -1.1, -1.1, -2.5, np.nan])
    spei_next = np.array([0.0, 0.0, -1.2, -1.0, -1.6, -1.4, np.nan])
    assert warning_map.warning_classes(spi_now, spei_now, spei_next).tolist() == [0, 1, 1, 2, 3, 2, 0]
    assert [warning_map.mckee(v) for v in (-2.5, -1.7, -1.2, 0.0, 1.2)] == [
        "extreme drought", "severe drought", "moderate drought", "near normal", "moderately wet"]


# -- end to end --------------------------------------------------------------------------------------------
def _png_is_a_map(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 100_000, path
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1500
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours, counts = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], return_counts=True)
    assert colours.size > 3000 and counts.max() < 0.85 * counts.sum()  # not a blank canvas
    for hex_colour in warning_map.CLASS_COLOURS[1:]:  # the warning colours, blended over the hillshade, are there
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(rgb - target).sum(axis=-1) < 120).sum() > 2000, hex_colour


def _assert_report(report: dict[str, Any], tiles: int) -> None:
    assert all(c["ok"] for c in report["checks"]), report["checks"]
    assert sorted(report["tiles"]) == [f"tile_{i:02d}" for i in range(tiles)]
    for tile in report["tiles"].values():  # pooled over a tile's cells: the in-sample misfit of 19 values a month
        assert abs(tile["spi_mean"]) < 0.05 and abs(tile["spi_std"] - 1) < 0.05, tile
        assert abs(tile["spei_mean"]) < 0.05 and abs(tile["spei_std"] - 1) < 0.08, tile
    # The storyline: drought grows from the north-west tile to the south-east one.
    first, last = report["tiles"]["tile_00"], report["tiles"][f"tile_{tiles - 1:02d}"]
    assert first["class"] == "near normal" and last["class"] in {"severe drought", "extreme drought"}
    assert last["warning_pct"]["alert"] > 50 and first["warning_pct"]["alert"] < 10
    assert report["forecast_skill"]["spei"]["skill_vs_persistence"] > 0
    assert report["issued"] == "Aug 2010" and report["forecast_for"] == "Sep 2010"


def _cwl(runner: str, outdir: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    cmd = [str(BIN / runner), "--no-container", "--parallel", "--timestamps", "--outdir", str(outdir)]
    if runner == "oscar-cwl":
        cmd += ["--offload", "hinted"]
    cmd += [str(DROUGHT / "drought.cwl"), *(a for k, v in SMALL.items() for a in (f"--{k}", str(v)))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def cluster_env(local_cluster: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OSCAR_ENDPOINT": local_cluster.endpoint, "OSCAR_USER": local_cluster.username,
                "OSCAR_PASSWORD": local_cluster.password, "OSCAR_SSL_VERIFY": "false",
                # Local steps (and, on the local cluster, offloaded scripts) run `python3`: this interpreter.
                "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])})
    return env


def test_cwl_workflow_offloads_indices_and_forecaster_and_passes_the_checks(cluster_env, tmp_path):
    proc, out = _cwl("oscar-cwl", tmp_path / "oscar", cluster_env)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)
    submitted = re.findall(r"\[job (\w+)\] submitted to OSCAR", log)
    assert sorted(submitted) == ["forecast", "indices", "indices_2", "indices_3"]  # scatter: one job per tile
    assert "[job prepare] /" in log and "[job warning_map] /" in log  # the light steps ran locally
    assert "[PASS] SPI reference period" in log and "[FAIL]" not in log
    report = json.loads(Path(out["report"]["path"]).read_text())
    _assert_report(report, SMALL["tiles"])
    _png_is_a_map(Path(out["warning_png"]["path"]))
    # The step runs in cwltool's scratch folder: it names the map and says where the runner puts it, never a
    # scratch path that is gone once the runner has moved the files.
    assert "Map: drought_warning.png" in log and "in the workflow's output directory" in log
    assert not re.search(r"Map: /\S*drought_warning\.png", log)
    assert report["outputs"] == {"map": "drought_warning.png", "table": "drought_summary.csv"}
    table = Path(out["summary_table"]["path"]).read_text().splitlines()
    assert table[0].startswith("tile,elevation_m,spi_now,spei_now,spi_next,spei_next") and len(table) == 5

    # Plain cwltool (everything local) gives the same numbers: offloading changes where, not what.
    _, local = _cwl("cwltool", tmp_path / "local", cluster_env)
    again = json.loads(Path(local["report"]["path"]).read_text())
    assert again["tiles"] == report["tiles"] and again["forecast_skill"] == report["forecast_skill"]


def test_fdl_services_run_a_tile_from_a_tar(client, tmp_path):
    from oscar_plugins import Dispatcher, load_fdl

    items = load_fdl(DROUGHT / "drought_services.yaml").services
    assert [i.service.name for i in items] == ["drought-spi", "drought-forecast"]
    assert all(i.service.image.startswith("quay.io/jupyter/scipy-notebook") for i in items)
    client.ensure_service(items[0].service)
    (tile,) = climate.write_tiles(climate.generate(tiles=1, tile_size=6, years=5, seed=1), tmp_path / "tiles")
    archive = tmp_path / "tile_00.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(DROUGHT / "steps" / "indices.py", arcname="indices.py")
        tar.add(tile, arcname=tile.name)
    (result,) = Dispatcher(client).map("drought-spi", [[archive]], tmp_path / "out")
    assert result.ok, result.error
    by_name = {p.name: p for p in result.outputs}
    assert set(by_name) == {"indices_tile_00.npz", "summary_tile_00.json"}
    summary = json.loads(by_name["summary_tile_00.json"].read_text())
    assert summary["spi_reference"]["max_abs_cell_mean"] < 0.1 and summary["reference_months"] == 48


@pytest.mark.slow
def test_airflow_dag_runs_on_oscar_and_passes_the_checks(local_cluster, tmp_path):
    """``airflow dags test`` in an isolated AIRFLOW_HOME (SQLite), the connection pointing at the local cluster."""
    if not (BIN / "airflow").exists():
        pytest.skip("Airflow is not installed: pip install -e '.[airflow]'")
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DROUGHT),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "AIRFLOW_CONN_OSCAR_DEFAULT": json.dumps({"conn_type": "oscar", "host": local_cluster.endpoint,
                                                  "login": local_cluster.username,
                                                  "password": local_cluster.password, "extra": {"ssl_verify": False}}),
    })
    airflow = str(BIN / "airflow")
    proc = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    conf = {**SMALL, "data_dir": str(tmp_path / "data")}
    proc = subprocess.run([airflow, "dags", "test", "drought_spi", "-c", json.dumps(conf)], env=env,
                          capture_output=True, text=True, timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=success" in output, output[-5000:]
    for task in ("prepare_climate", "deploy_services", "indices_per_tile", "forecast_inputs", "forecaster",
                 "warning_map"):
        assert f"task_id='{task}'" in output, task
    assert output.count("----- log of OSCAR job drought-spi-") == SMALL["tiles"]  # one job per tile
    assert output.count("----- log of OSCAR job drought-forecast-") == 1
    (report_file,) = (tmp_path / "data").glob("*/report.json")
    report = json.loads(report_file.read_text())
    _assert_report(report, SMALL["tiles"])
    _png_is_a_map(report_file.parent / "drought_warning.png")
    assert (report_file.parent / "drought_summary.csv").is_file()
    assert 0 < report["timing"]["offloaded_share"] < 1 and math.isfinite(report["timing"]["total_s"])
    assert local_cluster.password not in output


@pytest.mark.slow
def test_event_driven_workflow_draws_a_map_for_each_month_that_lands(local_cluster, tmp_path):
    """``run_events.py``: two uploads, two bucket-triggered jobs, two job events, two DAG runs, two maps, with
    Airflow's API server, scheduler, DAG processor and triggerer running as a deployment runs them."""
    if not (BIN / "airflow").exists():
        pytest.skip("Airflow is not installed: pip install -e '.[airflow]'")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({"OSCAR_ENDPOINT": local_cluster.endpoint, "OSCAR_USER": local_cluster.username,
                "OSCAR_PASSWORD": local_cluster.password, "OSCAR_SSL_VERIFY": "false",
                "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
                "AIRFLOW_CONN_OSCAR_DEFAULT": json.dumps({
                    "conn_type": "oscar", "host": local_cluster.endpoint, "login": local_cluster.username,
                    "password": local_cluster.password, "extra": {"ssl_verify": False}})})
    out = tmp_path / "maps"
    proc = subprocess.run([sys.executable, str(DROUGHT / "run_events.py"), "--tiles", str(SMALL["tiles"]),
                           "--tile-size", str(SMALL["tile_size"]), "--years", str(SMALL["years"]),
                           "--months", "7", "8", "--interval", "1", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("OSCAR's bucket trigger starts a job") == 2
    assert proc.stdout.count(": its event starts drought_warning_on_new_month") == 2
    maps = sorted(out.glob("*/drought_warning.png"))
    assert [p.parent.name[:7] for p in maps] == ["2010-07", "2010-08"]  # one map per month that landed
    for path in maps:
        _png_is_a_map(path)
        report = json.loads((path.parent / "report.json").read_text())
        assert all(c["ok"] for c in report["checks"])
