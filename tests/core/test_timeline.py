"""Timelines: the pure model, the path checked before a run, and `job --wait --timeline` on the local cluster."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from oscar_plugins import ConfigError, TimelineRow, check_timeline_path, timeline_totals, write_timeline
from oscar_plugins._timeline import layout
from tests.core.test_cli import cli, env  # noqa: F401 - env is a fixture

FDL = """\
functions:
  oscar:
  - local:
      name: {name}
      image: alpine
      cpu: '0.5'
      script: copy.sh
      input: [{{storage_provider: minio.default, path: {name}/in}}]
      output: [{{storage_provider: minio.default, path: {name}/out}}]
"""


class Table(HTMLParser):
    """The page's table: each job row with the service of its group (tbody data-service)."""

    def __init__(self) -> None:
        super().__init__()
        self.service: str | None = None
        self.rows: list[tuple[str | None, list[str]]] = []
        self.cell: list[str] | None = None
        self.svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        got = dict(attrs)
        if tag == "svg":
            self.svg += 1
        if tag == "tbody":
            self.service = got.get("data-service")
        if tag == "tr" and got.get("class") == "job":
            self.rows.append((self.service, []))
        if tag == "td":
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None and self.rows:
            self.rows[-1][1].append("".join(self.cell))
            self.cell = None


def parse(path: Path) -> Table:
    table = Table()
    table.feed(path.read_text(encoding="utf-8"))
    return table


# -- pure ----------------------------------------------------------------------------------------------
def test_spans_are_clamped_in_order_and_local_steps_only_run():
    row = TimelineRow("svc", "a", submitted=10.4, started=10.0, finished=12.0, collected=13.0)
    assert row.spans() == [("queued", 10.4, 10.4), ("running", 10.4, 12.0), ("collecting", 12.0, 13.0)]
    never = TimelineRow("svc", "b", submitted=1.0, collected=3.0, status="failed")
    assert never.spans() == [("queued", 1.0, 3.0)]
    local = TimelineRow("here", "prep", kind="local", started=0.0, finished=2.0, cpu=2.0)
    assert local.spans() == [("running", 0.0, 2.0)]
    assert TimelineRow("svc", "c").spans() == []


def test_rows_are_grouped_by_service_offloaded_first_and_totals_prefer_the_server():
    rows = [TimelineRow("b", "b1", submitted=5, started=6, finished=8, collected=9, cpu=1.0, bytes_in=10),
            TimelineRow("a", "a1", submitted=1, started=2, finished=3602, collected=3603, cpu=0.5, bytes_out=7),
            TimelineRow("here", "prep", kind="local", started=0, finished=3600, cpu=1.0)]
    groups, t0 = layout(rows)
    assert [name for name, _ in groups] == ["a", "b", "here"] and t0 == 0
    assert [p.line for _, items in groups for p in items] == [0, 1, 2]
    derived = timeline_totals(rows)
    assert derived.cpu_hours_offloaded == pytest.approx(0.5 + 2 / 3600) and derived.cpu_hours_local == 1.0
    assert derived.cpu_sources == {"a": "job records", "b": "job records"}
    assert (derived.bytes_in, derived.bytes_out) == (10, 7)
    served = timeline_totals(rows, {"a": 0.25})
    assert served.cpu_hours_offloaded == pytest.approx(0.25 + 2 / 3600)
    assert served.cpu_sources["a"] == "/system/metrics"


@pytest.mark.parametrize(("name", "words"), [
    ("out.pdf", "unknown suffix '.pdf'"),
    ("out", "unknown suffix '(none)'"),
    ("missing/out.html", "does not exist"),
])
def test_bad_paths_are_refused_naming_the_path_and_the_fix(tmp_path, name, words):
    with pytest.raises(ConfigError, match="timeline") as caught:
        check_timeline_path(tmp_path / name)
    assert words in str(caught.value) and str(tmp_path / name) in str(caught.value)
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        check_timeline_path(tmp_path / "folder.html")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot be written"):
            check_timeline_path(locked / "t.png")
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_nobody_can_write_is_refused_even_for_root():
    with pytest.raises(ConfigError, match=r"'/proc/timeline\.html' cannot be written"):
        check_timeline_path("/proc/timeline.html")


def test_both_formats_from_rows(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    rows = [TimelineRow(f"svc-{i % 3}", f"in-{i}.nc", submitted=i, started=i + 1, finished=i + 4, collected=i + 5,
                        cpu=1.0) for i in range(12)]
    rows.append(TimelineRow("this machine", "prep", kind="local", started=0, finished=1))
    png = image.imread(str(write_timeline(rows, tmp_path / "t.png")))
    assert png.shape[1] == 1300 and png.shape[0] > 400  # 13 in wide at 100 dpi; taller with more rows
    table = parse(write_timeline(rows, tmp_path / "t.html"))
    assert table.svg == 1 and len(table.rows) == 13
    assert [s for s, _ in table.rows].count("svc-0") == 4 and table.rows[-1][0] == "this machine"
    many = [TimelineRow("svc", f"j{i}", submitted=i / 10, started=i / 10 + 1, finished=i / 10 + 2) for i in range(500)]
    assert image.imread(str(write_timeline(many, tmp_path / "many.png"))).shape[0] <= 2400  # capped height


# -- the CLI on the local cluster --------------------------------------------------------------------
@pytest.fixture()
def copy_service(env, tmp_path):  # noqa: F811 - env is the fixture imported above
    name = "cli-timeline"
    (tmp_path / "copy.sh").write_text('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"\n')
    (tmp_path / "fdl.yaml").write_text(FDL.format(name=name))
    out = cli(env, "-c", "local-test", "service", "apply", str(tmp_path / "fdl.yaml"))
    assert out.returncode == 0, out.stderr
    files = []
    for i in range(5):
        files.append(tmp_path / f"in{i}.txt")
        files[-1].write_text(f"input {i}\n" * 100)
    return name, files


def test_job_wait_writes_a_timeline_in_both_formats(env, copy_service, tmp_path, local_cluster):  # noqa: F811
    image = pytest.importorskip("matplotlib.image")
    name, files = copy_service
    page = tmp_path / "run.html"
    out = cli(env, "job", name, *map(str, files), "--wait", "-o", str(tmp_path / "o1"), "--timeline", str(page))
    assert out.returncode == 0, out.stderr
    assert f"timeline: {page}" in out.stderr
    source = "from /system/metrics" if local_cluster.persona.metrics else "from job records"  # v4.0+ serves it
    assert source in out.stderr
    table = parse(page)
    assert len(table.rows) == 5 and {s for s, _ in table.rows} == {name}
    assert sorted(cells[0] for _, cells in table.rows) == sorted(map(str, files))
    assert all(cells[3] == "succeeded" and cells[1] == "offloaded" for _, cells in table.rows)
    assert "bytes moved: 4.0 KB staged, 4.0 KB collected" in page.read_text()

    picture = tmp_path / "run.png"
    out = cli(env, "job", name, *map(str, files), "--wait", "-o", str(tmp_path / "o2"), "--timeline", str(picture))
    assert out.returncode == 0, out.stderr
    assert image.imread(str(picture)).shape[:2] == (round(100 * (1.15 + 0.7 + 5 * 0.26)), 1300)


@pytest.mark.parametrize("bad", ["nowhere/run.html", "run.pdf"])
def test_a_bad_timeline_path_stops_before_any_job_is_submitted(env, copy_service, tmp_path, client, bad):  # noqa: F811
    name, files = copy_service
    before = set(client.list_jobs(name))
    target = tmp_path / bad
    out = cli(env, "job", name, *map(str, files), "--wait", "-o", str(tmp_path / "o"), "--timeline", str(target))
    assert out.returncode == 2, out.stderr
    assert str(target) in out.stderr and ("create it first" in out.stderr or "end the name in .html" in out.stderr)
    assert set(client.list_jobs(name)) == before and not (tmp_path / "o").exists()
    assert cli(env, "job", name, str(files[0]), "--timeline", str(tmp_path / "x.html")).returncode == 2  # no --wait
