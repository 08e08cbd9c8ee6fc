"""``oscar-cwl --timeline``: real runs on the local cluster draw one row per step, offloaded or local."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.test_timeline import parse


def test_offloaded_and_local_steps_in_one_page(oscar_cwl, tmp_path):
    page = tmp_path / "run.html"
    run = oscar_cwl("--offload", "hinted", "--timeline", str(page), "mixed-wf.cwl", "--name", "flood")
    assert run.code == 0, run.stderr
    table = parse(page)
    rows = {cells[0]: (service, cells[1], cells[3]) for service, cells in table.rows}
    assert len(table.rows) == 2 and set(rows) == {"heavy", "light"}, table.rows
    assert rows["light"] == ("local (this machine)", "local", "ran")
    service, kind, status = rows["heavy"]
    assert kind == "offloaded" and status == "succeeded" and service != "local (this machine)"
    assert "CPU-hours" in page.read_text() and "[timeline]" in run.stderr


def test_a_scatter_as_a_picture(oscar_cwl, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    picture = tmp_path / "run.png"
    words = ["alpha", "beta", "gamma", "delta"]
    run = oscar_cwl("--timeline", str(picture), "scatter-wf.cwl", *[a for w in words for a in ("--items", w)])
    assert run.code == 0, run.stderr
    assert image.imread(str(picture)).shape[:2] == (round(100 * (1.15 + 0.7 + 4 * 0.26)), 1300)  # one row per job


@pytest.mark.parametrize("bad", ["nowhere/run.html", "run.svg"])
def test_a_bad_timeline_path_stops_before_any_step(oscar_cwl, tmp_path, bad):
    target = tmp_path / bad
    run = oscar_cwl("--timeline", str(target), "scatter-wf.cwl", "--items", "x")
    assert run.code == 2, run.stderr
    assert str(target) in run.stderr and "submitted to OSCAR" not in run.stderr
    assert not Path(tmp_path / "oscar-out").exists()
