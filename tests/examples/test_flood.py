"""The DT-Flood example: the model's physics (unit tests) and the demo end to end through oscar-cwl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.examples.steps import load_step

FLOOD = Path(__file__).resolve().parents[2] / "examples" / "flood"


def _load(path: Path) -> ModuleType:
    return load_step(path, "flood_example")


model = _load(FLOOD / "steps" / "model.py")
prepare = _load(FLOOD / "steps" / "prepare.py")
impact = _load(FLOOD / "steps" / "impact.py")
checks = _load(FLOOD / "checks.py")

NO_RAIN = model.Forcing(np.array([0.0]), np.array([0.0]))


def _bumpy_bed(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.3, (n, n)).cumsum(axis=0) * 0.2 + np.linspace(0.0, 3.0, n)


# -- the scheme -------------------------------------------------------------------------------------------
def test_closed_box_with_rain_conserves_volume():
    z = _bumpy_bed(30)
    rain = model.Forcing(np.array([0.0, 1800.0]), np.array([30e-3 / 1800.0, 0.0]))  # 30 mm in 30 min
    res = model.simulate(z, 20.0, 0.04, np.zeros_like(z), 3600.0, rain)
    expected = 30e-3 * z.size * 20.0**2
    assert res.volume["rain_in"] == pytest.approx(expected, rel=1e-12)
    assert abs(res.final_depth.sum() * 400.0 - expected) / expected < 1e-10
    assert res.volume["relative_error"] < 1e-10
    assert res.final_depth.min() >= 0.0
    # The water ran downhill: the lowest tenth of the box holds more than its share.
    low = z <= np.quantile(z, 0.1)
    assert res.final_depth[low].mean() > 2 * res.final_depth.mean()


def test_lake_at_rest_stays_at_rest():
    rng = np.random.default_rng(1)
    z = rng.uniform(-3.0, -0.5, (25, 25))
    h0 = 0.2 - z  # flat surface at +0.2 m over a rough bed
    sea = model.Forcing(np.array([0.0]), np.array([0.0]), np.array([0.0, 7200.0]), np.array([0.2, 0.2]))
    res = model.simulate(z, 10.0, 0.03, h0, 7200.0, sea)
    assert np.abs(res.final_depth - h0).max() < 1e-12
    assert max(np.abs(res.final_q[0]).max(), np.abs(res.final_q[1]).max()) < 1e-10  # round-off of z + h only
    assert res.volume["sea_in"] < 1e-6 and res.volume["sea_out"] < 1e-6  # m3, over two hours


def test_dam_break_runs_downhill_and_conserves_volume():
    n, dx = 40, 10.0
    x = (np.arange(n) + 0.5) * dx
    z = np.tile(0.01 * (x.max() - x), (10, 1))  # a 1% slope falling eastwards (towards larger x)
    h0 = np.where(x < 60.0, 2.0, 0.0)[None, :].repeat(10, axis=0)
    res = model.simulate(z, dx, 0.03, h0, 600.0, NO_RAIN)
    volume0 = h0.sum() * dx * dx
    assert abs(res.final_depth.sum() * dx * dx - volume0) / volume0 < 1e-12
    centre0 = (h0.sum(axis=0) * x).sum() / h0.sum()
    centre1 = (res.final_depth.sum(axis=0) * x).sum() / res.final_depth.sum()
    assert centre1 > centre0 + 100.0  # the mass moved downhill by over 100 m in 10 minutes
    reached = res.arrival_time[5]
    arrived = ~np.isnan(reached)
    assert arrived[x > 200.0].any()
    assert np.all(np.diff(reached[arrived][x[arrived] >= 60.0]) >= 0)  # the front arrives later further down


def test_adaptive_time_step_follows_cfl():
    z = np.zeros((10, 10))
    deep = model.simulate(z, 10.0, 0.03, np.full_like(z, 4.0), 60.0, NO_RAIN)
    shallow = model.simulate(z, 10.0, 0.03, np.full_like(z, 1.0), 60.0, NO_RAIN)
    # dt = 0.7 dx / sqrt(g h): in 4x shallower water, steps twice as long.
    assert deep.steps == pytest.approx(2 * shallow.steps, abs=1)


# -- the scenario -----------------------------------------------------------------------------------------
def test_dem_drains_to_the_sea_without_pits():
    z, river, dx = prepare.make_dem(42, 32)
    inland = np.broadcast_to((np.arange(32) + 0.5) * dx >= prepare.COAST, z.shape)
    padded = np.pad(z, 1, constant_values=np.inf)
    lowest_neighbour = np.minimum.reduce([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    assert np.all(lowest_neighbour[inland] < z[inland])  # every land cell has a way down: no pits
    assert river.any() and z[:, 0].max() < 0 and z[inland].min() > -2.0  # a river; the sea all along the west


def test_events_grow_with_the_return_period():
    periods = [2, 10, 50, 100, 1000]
    surges = [prepare.surge_peak(t) for t in periods]
    rains = [prepare.rain_depth(t) for t in periods]
    assert surges == sorted(surges) and rains == sorted(rains)
    event = prepare.make_event(100)
    assert event["sea_level"].max() == pytest.approx(surges[3], abs=0.02)
    assert event["rain_rate"].sum() * 600 * 1000 == pytest.approx(rains[3])


def test_sea_water_stays_below_the_flood_level(tmp_path):
    """Without rain nothing can lift water above the peak sea level (plus inertial run-up)."""
    prepare.prepare(100, 42, 32, tmp_path)
    with np.load(tmp_path / "scenario_T100.npz") as s:
        d = {k: s[k] for k in s.files}
    surge_only = model.Forcing(d["rain_t"], 0 * d["rain_rate"], d["sea_t"], d["sea_level"])
    res = model.simulate(d["dem"], float(d["dx"]), d["manning"], d["h0"], float(d["duration"]), surge_only)
    above = d["dem"] > d["sea_level"].max() + 0.1
    assert above.sum() > 100
    assert res.max_depth[above].max() == 0.0  # never wet, not even a film
    assert res.max_depth[~above & d["land"]].max() > 1.0  # while the low land floods
    assert res.volume["relative_error"] < 1e-12


def test_depth_damage_and_classes():
    depth = np.array([0.0, 0.05, 0.1, 0.4, 0.7, 1.5, 2.5, 10.0])
    share = impact.damage_share(depth)
    assert share[0] == share[1] == 0.0 and share[-1] == 1.0
    assert np.all(np.diff(share) >= 0)
    assert [impact.CLASSES[k][0] for k in impact.depth_class(depth)] == [
        "dry", "dry", "0.1-0.5 m", "0.1-0.5 m", "0.5-1 m", "1-2 m", "> 2 m", "> 2 m"]


# -- the demo, end to end on the local cluster ----------------------------------------------------------
def _png_is_a_picture(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 30_000, path
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert colours.size > 500  # a map, not a blank canvas


@pytest.fixture(scope="module")
def demo(local_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("flood-demo")
    env = dict(os.environ)
    env.update({"OSCAR_ENDPOINT": local_cluster.endpoint, "OSCAR_USER": local_cluster.username,
                "OSCAR_PASSWORD": local_cluster.password, "OSCAR_SSL_VERIFY": "false"})
    proc = subprocess.run([sys.executable, str(FLOOD / "run_demo.py"), "--size", "32", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=400)
    return proc, out


@pytest.mark.slow
def test_demo_offloads_the_model_and_passes_the_physical_checks(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Demo finished: all checks passed." in proc.stdout
    assert "[FAIL]" not in proc.stdout
    # Only the model runs on OSCAR: once for the single scenario, once per return period of the scatter.
    submitted = re.findall(r"\] (\w+): submitted to OSCAR", proc.stdout)
    assert sorted(submitted) == ["model", "model", "model_2", "model_3"]
    logs = (out / "single.log").read_text() + (out / "scatter.log").read_text()
    assert "[job prepare] /" in logs and "[job impact] /" in logs  # local steps show a local command line
    assert re.search(r"Flood map \(T = 100 years\): (\S+\.png)", proc.stdout)


@pytest.mark.slow
def test_demo_says_it_left_the_local_cluster_it_started_running(demo, tmp_path):
    proc, _ = demo
    assert "local down" not in proc.stdout  # a configured cluster (OSCAR_ENDPOINT): nothing of ours was started
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSCAR_") or k.startswith("OSCAR_PLUGINS_")}
    env.update({"OSCAR_CONFIG": str(tmp_path / "no-profiles.yaml"), "OSCAR_PLUGINS_LOCAL_DIR": str(tmp_path / "local")})
    from oscar_plugins.local import down, status

    try:
        proc = subprocess.run([sys.executable, str(FLOOD / "run_demo.py"), "--size", "24", "--only", "single",
                               "-o", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        info = status(tmp_path / "local")
        assert info is not None  # the demo started it and left it running, as it says
        assert f"The demo started the embedded local OSCAR cluster ({info.endpoint})" in proc.stdout
        assert "oscar-plugins local down" in proc.stdout
        again = subprocess.run([sys.executable, str(FLOOD / "run_demo.py"), "--size", "24", "--only", "single",
                                "-o", str(tmp_path / "out2")], env=env, capture_output=True, text=True, timeout=400)
        assert again.returncode == 0 and "local down" not in again.stdout  # it was running before: no notice
    finally:
        down(tmp_path / "local")


@pytest.mark.slow
def test_demo_outputs_make_physical_sense(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scatter = out / "scatter"
    for period in (10, 50, 100):
        found = checks.scenario_checks(scatter / f"scenario_T{period}.npz", scatter / f"flood_T{period}.npz",
                                       scatter / f"flood_T{period}.json")
        assert all(c.ok for c in found), [str(c) for c in found]
        summary = json.loads((scatter / f"flood_T{period}.json").read_text())
        assert summary["volume_m3"]["relative_error"] < 1e-10
        assert summary["volume_m3"]["sea_in"] > 0 and summary["volume_m3"]["rain_in"] > 0
    rows = json.loads((scatter / "comparison.json").read_text())["scenarios"]
    areas = [r["flooded_area_km2"] for r in rows]
    assert [r["return_period"] for r in rows] == [10, 50, 100]
    assert areas[0] < areas[1] < areas[2] and areas[0] > 0.1
    assert rows[0]["damage_eur"] < rows[2]["damage_eur"]
    # The model is deterministic: the scatter's T=100 equals the single run's, wherever each ran.
    single = json.loads((out / "single" / "flood_T100.json").read_text())
    again = json.loads((scatter / "flood_T100.json").read_text())
    assert single["flooded_area_km2"] == again["flooded_area_km2"]
    assert single["volume_m3"]["final"] == again["volume_m3"]["final"]
    for png in [out / "single" / "flood_map_T100.png", scatter / "comparison.png",
                *sorted(scatter.glob("flood_map_T*.png"))]:
        _png_is_a_picture(png)


# -- the standalone OSCAR service (FDL), without CWL ----------------------------------------------------
@pytest.mark.slow
def test_fdl_service_runs_the_model_on_a_scenario_archive(client, tmp_path):
    import tarfile

    from oscar_plugins import Dispatcher, load_fdl

    (item,) = load_fdl(FLOOD / "flood_service.yaml").services
    assert item.service.image.startswith("quay.io/jupyter/scipy-notebook")
    client.ensure_service(item.service)
    prepare.prepare(10, 42, 24, tmp_path)
    archive = tmp_path / "scenario_T10.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(FLOOD / "steps" / "model.py", arcname="model.py")
        tar.add(tmp_path / "scenario_T10.npz", arcname="scenario_T10.npz")
    (result,) = Dispatcher(client).map(item.service.name, [[archive]], tmp_path / "out")
    assert result.ok, result.error
    by_name = {p.name: p for p in result.outputs}
    assert set(by_name) == {"flood_T10.npz", "flood_T10.json"}
    found = checks.scenario_checks(tmp_path / "scenario_T10.npz", by_name["flood_T10.npz"], by_name["flood_T10.json"])
    assert all(c.ok for c in found), [str(c) for c in found]
