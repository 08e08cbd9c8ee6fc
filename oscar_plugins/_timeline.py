"""Timelines of a batch: when each job or step queued, ran and was collected, as a PNG or an HTML page.

Data in, data out: a batch's runner (``oscar-plugins job --wait``, ``oscar-cwl``, a library user) records one
:class:`TimelineRow` per job or local step, and :func:`write_timeline` draws them, grouped by service::

    from oscar_plugins import TimelineRow, check_timeline_path, write_timeline

    target = check_timeline_path("run.html")       # before the run: a bad path fails now, not at the end
    rows = [TimelineRow("svc", "a.nc", submitted=t0, started=t1, finished=t2, collected=t3, cpu=1.0)]
    write_timeline(rows, target)                   # .html (no dependency) or .png (needs matplotlib)

The HTML page is self-contained (an inline SVG and a table; no script, no network). Totals are CPU-hours and
bytes moved: a service's CPU-hours come from the server's ``/system/metrics`` where it serves them
(:func:`server_cpu_hours`, OSCAR v4.0+ with a usage source), else from the rows (running time x the
service's cpu).
"""

from __future__ import annotations

import html
import importlib.util
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigError
from ._validation import output_path_problem, parse_cpu

if TYPE_CHECKING:
    from ._client import OscarClient
    from ._jobs import Job

__all__ = ["SUFFIXES", "TimelineRow", "TimelineTotals", "check_timeline_path", "job_row", "layout", "parse_time",
           "server_cpu_hours", "timeline_totals", "write_timeline"]

log = logging.getLogger("oscar_plugins")

#: Suffixes :func:`write_timeline` writes, and what each needs.
SUFFIXES = {".html": "an HTML page (no dependency)", ".htm": "an HTML page (no dependency)",
            ".png": "a PNG picture (needs matplotlib, e.g. from 'oscar-plugins[examples]')"}
OFFLOADED, LOCAL = "offloaded", "local"
#: The segments of a row, in order, with their colours (the PNG and the HTML use the same).
SEGMENTS = (("queued", "#f2b84b"), ("running", "#3b75af"), ("collecting", "#59a14f"))
LOCAL_COLOUR, FAILED_COLOUR = "#8e6bb8", "#d62728"
_LEGEND = (*SEGMENTS, ("local step", LOCAL_COLOUR), ("failed", FAILED_COLOUR))


@dataclass
class TimelineRow:
    """One job or local step. Times are UNIX seconds; None when unknown (a job that never started).

    ``group`` is the service (offloaded) or where a local step ran; ``cpu`` the cores it had (the service's
    ``cpu``), for CPU-hours derived from the running time; ``bytes_in``/``bytes_out`` what was staged and
    collected.
    """

    group: str
    name: str
    kind: str = OFFLOADED
    submitted: float | None = None
    started: float | None = None
    finished: float | None = None
    collected: float | None = None
    status: str = "succeeded"
    job: str | None = None
    cpu: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0

    def spans(self) -> list[tuple[str, float, float]]:
        """(segment, start, end) for the known parts; times are clamped in order (job listings give whole
        seconds while the client's own clock does not)."""
        marks: list[float | None] = [self.submitted, self.started, self.finished, self.collected]
        if self.kind == LOCAL:
            marks = [None, self.started if self.started is not None else self.submitted, self.finished, None]
        known = [m for m in marks if m is not None]
        if not known:
            return []
        low = known[0]
        clamped: list[float | None] = []
        for mark in marks:
            if mark is not None:
                low = max(low, mark)
                clamped.append(low)
            else:
                clamped.append(None)
        spans = []
        for i, (segment, _) in enumerate(SEGMENTS):
            start = clamped[i]
            end = next((m for m in clamped[i + 1:] if m is not None), None)
            if start is not None and end is not None and end >= start:
                spans.append((segment, start, end))
        return spans

    @property
    def running_seconds(self) -> float:
        return sum(end - start for segment, start, end in self.spans() if segment == "running")


@dataclass
class TimelineTotals:
    """What a batch cost: CPU-hours (offloaded and local) and bytes moved."""

    rows: int
    wall_seconds: float
    cpu_hours_offloaded: float
    cpu_hours_local: float
    #: Per service, where its CPU-hours come from: "/system/metrics" or "job records".
    cpu_sources: dict[str, str] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    failed: int = 0

    def summary(self) -> str:
        sources = sorted(set(self.cpu_sources.values()))
        source = " and ".join(sources) if sources else "job records"
        text = (f"{self.rows} row(s), {self.failed} failed, {_duration(self.wall_seconds)} wall; "
                f"CPU-hours: {self.cpu_hours_offloaded:.3g} offloaded (from {source})")
        if self.cpu_hours_local:
            text += f", {self.cpu_hours_local:.3g} local"
        return text + f"; bytes moved: {_size(self.bytes_in)} staged, {_size(self.bytes_out)} collected"


# -- before the run -----------------------------------------------------------------------------------
def check_timeline_path(path: str | os.PathLike[str]) -> Path:
    """Check, before a batch starts, that a timeline can be written at ``path``; returns it as a Path.

    Raises:
        ConfigError: the suffix is not one :data:`SUFFIXES` lists, a PNG is asked for without matplotlib,
            the folder does not exist, the path is a folder, or it cannot be written; the message names
            the path and what to do.
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"timeline {str(path)!r}: unknown suffix {target.suffix or '(none)'!r}; end the name in "
                          ".html (a page a browser opens offline) or .png (a picture)")
    if suffix == ".png" and importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(f"timeline {str(path)!r}: a PNG needs matplotlib, which is not installed: "
                          "pip install matplotlib (or 'oscar-plugins[examples]'), or ask for .html (no dependency)")
    if target.is_dir():
        raise ConfigError(f"timeline {str(path)!r} is a folder: give a file name ending in .html or .png")
    problem = output_path_problem("timeline", target, str(path))
    if problem is None and target.exists() and not os.access(target, os.W_OK):
        problem = (f"timeline {str(path)!r} cannot be written ({target} is read-only): choose a path in a folder "
                   "you can write to")
    if problem:
        raise ConfigError(problem)
    return target


def job_row(job: Job, name: str, *, collected: float | None = None, status: str = "succeeded",
            cpu: float | str | None = None, bytes_in: int = 0, bytes_out: int = 0) -> TimelineRow:
    """The row of an offloaded job: submitted by the client's clock, started and finished as the cluster's job
    listing last showed them (``start_time``, ``finish_time``; whole seconds), collected when given. ``cpu``
    may be the service's quantity as written (``"500m"``); one that does not parse is left unknown."""
    if isinstance(cpu, str):
        try:
            cpu = parse_cpu(cpu)
        except ValueError:
            cpu = None
    return TimelineRow(job.service, name, OFFLOADED, submitted=job.submitted_at,
                       started=parse_time(job.info.get("start_time")), finished=parse_time(job.info.get("finish_time")),
                       collected=collected, status=status, job=job.name, cpu=cpu, bytes_in=bytes_in,
                       bytes_out=bytes_out)


# -- totals ---------------------------------------------------------------------------------------------
def server_cpu_hours(client: OscarClient, rows: Sequence[TimelineRow]) -> dict[str, float]:
    """CPU-hours per service of ``rows`` as the server counts them (``GET /system/metrics/{service}``) over
    the batch's time span; services the server has no figure for are left out (derive them)."""
    spans: dict[str, list[float]] = {}
    for row in rows:
        times = [t for t in (row.submitted, row.collected or row.finished) if t is not None]
        if row.kind == OFFLOADED and times:
            span = spans.setdefault(row.group, [min(times), max(times)])
            span[0], span[1] = min(span[0], *times), max(span[1], *times)
    found = {}
    for service, (start, end) in spans.items():
        value = client.service_metric(service, "cpu-hours", start=start, end=end)
        if value is not None:
            found[service] = value
    return found


def timeline_totals(rows: Sequence[TimelineRow], server: Mapping[str, float] | None = None) -> TimelineTotals:
    """Totals of a batch; ``server`` gives CPU-hours per service that replace the derived ones."""
    server = server or {}
    derived: dict[str, float] = {}
    local = 0.0
    for row in rows:
        hours = row.running_seconds * (row.cpu or 0.0) / 3600.0
        if row.kind == LOCAL:
            local += hours
        else:
            derived[row.group] = derived.get(row.group, 0.0) + hours
    sources = {svc: "/system/metrics" if svc in server else "job records" for svc in derived}
    times = [t for row in rows for _, start, end in row.spans() for t in (start, end)]
    return TimelineTotals(
        rows=len(rows), wall_seconds=(max(times) - min(times)) if times else 0.0,
        cpu_hours_offloaded=sum(server.get(svc, value) for svc, value in derived.items()),
        cpu_hours_local=local, cpu_sources=sources, bytes_in=sum(r.bytes_in for r in rows),
        bytes_out=sum(r.bytes_out for r in rows), failed=sum(r.status == "failed" for r in rows))


# -- layout (pure, shared by both formats) -----------------------------------------------------------
@dataclass
class Placed:
    """A row where it is drawn: its line (0 at the top), its spans relative to the batch's start."""

    line: int
    row: TimelineRow
    spans: list[tuple[str, float, float]]


def layout(rows: Iterable[TimelineRow]) -> tuple[list[tuple[str, list[Placed]]], float]:
    """Rows grouped by service (groups in order of their first mark, offloaded before local; rows by their
    first mark inside a group), with times relative to the batch's first mark; returns the groups and it."""
    rows = list(rows)
    marks = [start for row in rows for _, start, _ in row.spans()]
    t0 = min(marks) if marks else 0.0
    groups: dict[tuple[int, str], list[TimelineRow]] = {}
    for row in rows:
        groups.setdefault((row.kind == LOCAL, row.group), []).append(row)

    def first(row: TimelineRow) -> float:
        spans = row.spans()
        return spans[0][1] if spans else math.inf

    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], min(first(r) for r in kv[1]), kv[0][1]))
    placed, line = [], 0
    for (_, name), members in ordered:
        items = []
        for row in sorted(members, key=lambda r: (first(r), r.name)):
            items.append(Placed(line, row, [(s, a - t0, b - t0) for s, a, b in row.spans()]))
            line += 1
        placed.append((name, items))
    return placed, t0


# -- writing --------------------------------------------------------------------------------------------
def write_timeline(rows: Sequence[TimelineRow], path: str | os.PathLike[str], *, title: str = "Timeline",
                   totals: TimelineTotals | None = None) -> Path:
    """Write the timeline of ``rows`` to ``path``: ``.html``/``.htm`` or ``.png`` (by suffix), atomically.

    Raises:
        ConfigError: the path is not usable (see :func:`check_timeline_path`).
        OSError: writing failed.
    """
    target = check_timeline_path(path)
    totals = totals or timeline_totals(rows)
    if target.suffix.lower() == ".png":
        data = _png(rows, title, totals)
    else:
        data = render_html(rows, title, totals).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _png(rows: Sequence[TimelineRow], title: str, totals: TimelineTotals) -> bytes:
    from ._timeline_png import render_png

    groups, _ = layout(rows)
    bars: dict[str, tuple[list[int], list[float], list[float]]] = {}
    # A step that ran a few milliseconds in a run of minutes still shows (the HTML draws 1 pixel at least).
    least = max([b for _, items in groups for p in items for _, _, b in p.spans] + [0.0]) * 0.003
    for _, items in groups:
        for p in items:
            for segment, start, end in p.spans:
                ys, lefts, widths = bars.setdefault(_colour(p.row, segment), ([], [], []))
                ys.append(p.line)
                lefts.append(start)
                widths.append(max(end - start, least if segment == "running" else 0.0))
    bands = [(f"{_short(name, 30)} ({len(items)})", items[0].line, items[-1].line) for name, items in groups]
    labels = [_short(p.row.name, 36) for _, items in groups for p in items]
    return render_png(bars, bands, labels, title, totals.summary(), _LEGEND)


def render_html(rows: Sequence[TimelineRow], title: str, totals: TimelineTotals) -> str:
    """A self-contained page: the timeline as inline SVG, the totals, and a table (one row per job)."""
    groups, t0 = layout(rows)
    body = [f"<h1>{_e(title)}</h1>", f"<p class='totals'>{_e(totals.summary())}</p>",
            f"<p>Times are seconds after {_e(_iso(t0))}.</p>", _svg(groups, totals), _table(groups)]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


_CSS = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}"
        "tbody.group th{background:#eef;font-size:14px}svg text{font-family:sans-serif}.failed{color:#d62728}")
_LABEL_W, _GROUP_W, _PLOT_W, _LINE_H, _TOP = 260, 220, 900, 18, 40


def _svg(groups: list[tuple[str, list[Placed]]], totals: TimelineTotals) -> str:
    lines = sum(len(items) for _, items in groups)
    end = max([b for _, items in groups for p in items for _, _, b in p.spans] + [1e-9])
    scale = _PLOT_W / end
    height = _TOP + lines * _LINE_H + 40
    width = _LABEL_W + _PLOT_W + _GROUP_W
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
           f"aria-label='timeline'>"]
    x = _LABEL_W
    for i, (segment, colour) in enumerate(_LEGEND):
        out.append(f"<rect x='{x + i * 130}' y='8' width='14' height='12' fill='{colour}'/>"
                   f"<text x='{x + i * 130 + 18}' y='19' font-size='12'>{segment}</text>")
    for g, (name, items) in enumerate(groups):
        top = _TOP + items[0].line * _LINE_H
        out.append(f"<g class='group' data-service='{_e(name)}'>"
                   f"<rect x='0' y='{top}' width='{width}' height='{len(items) * _LINE_H}' "
                   f"fill='{'#f4f6fb' if g % 2 == 0 else '#ffffff'}'/>"
                   f"<text x='{_LABEL_W + _PLOT_W + 8}' y='{top + 13}' font-size='12' font-weight='bold'>"
                   f"{_e(_short(name, 30))} ({len(items)})</text>")
        for p in items:
            y = _TOP + p.line * _LINE_H
            out.append(f"<g class='row' data-name='{_e(p.row.name)}'><text x='{_LABEL_W - 6}' y='{y + 13}' "
                       f"font-size='11' text-anchor='end'>{_e(_short(p.row.name, 40))}</text>")
            for segment, a, b in p.spans:
                colour = _colour(p.row, segment)
                out.append(f"<rect x='{_LABEL_W + a * scale:.1f}' y='{y + 3}' width='{max((b - a) * scale, 1):.1f}' "
                           f"height='{_LINE_H - 6}' fill='{colour}'><title>{_e(p.row.name)} {segment} "
                           f"{b - a:.1f} s</title></rect>")
            out.append("</g>")
        out.append("</g>")
    axis_y = _TOP + lines * _LINE_H
    out.append(f"<line x1='{_LABEL_W}' y1='{axis_y}' x2='{_LABEL_W + _PLOT_W}' y2='{axis_y}' stroke='#444'/>")
    for tick in _ticks(end):
        tx = _LABEL_W + tick * scale
        out.append(f"<line x1='{tx:.1f}' y1='{_TOP}' x2='{tx:.1f}' y2='{axis_y + 4}' stroke='#ccc'/>"
                   f"<text x='{tx:.1f}' y='{axis_y + 17}' font-size='11' text-anchor='middle'>{tick:g}</text>")
    out.append(f"<text x='{_LABEL_W + _PLOT_W / 2}' y='{axis_y + 34}' font-size='12' text-anchor='middle'>"
               "seconds since the batch started</text></svg>")
    return "\n".join(out)


def _table(groups: list[tuple[str, list[Placed]]]) -> str:
    head = ("<table><thead><tr><th>name</th><th>kind</th><th>job</th><th>status</th><th>submitted</th>"
            "<th>queued s</th><th>running s</th><th>collecting s</th><th>staged</th><th>collected</th>"
            "</tr></thead>")
    parts = [head]
    for name, items in groups:
        parts.append(f"<tbody class='group' data-service='{_e(name)}'><tr><th colspan='10'>{_e(name)} "
                     f"({len(items)})</th></tr>")
        for p in items:
            secs = {segment: b - a for segment, a, b in p.spans}
            cells = [_e(p.row.name), p.row.kind, _e(p.row.job or ""),
                     f"<span class='{'failed' if p.row.status == 'failed' else ''}'>{_e(p.row.status)}</span>",
                     _e(_iso(p.row.submitted if p.row.kind == OFFLOADED else p.row.started))]
            cells += [f"{secs[s]:.1f}" if s in secs else "" for s, _ in SEGMENTS]
            cells += [_size(p.row.bytes_in), _size(p.row.bytes_out)]
            parts.append("<tr class='job'>" + "".join(
                f"<td class='n'>{c}</td>" if i >= 5 else f"<td>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
        parts.append("</tbody>")
    return "\n".join(parts) + "</table>"


def _colour(row: TimelineRow, segment: str) -> str:
    if row.status == "failed" and segment == "running":
        return FAILED_COLOUR
    if row.kind == LOCAL:
        return LOCAL_COLOUR
    return dict(SEGMENTS)[segment]


def _ticks(end: float) -> list[float]:
    """About eight round ticks from 0 to ``end``."""
    raw = end / 8
    step = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    return [i * step for i in range(int(end / step) + 1)]


def parse_time(text: Any) -> float | None:
    """An RFC 3339 time of a job listing (``2025-01-02T03:04:05Z``) as UNIX seconds, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def _iso(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
