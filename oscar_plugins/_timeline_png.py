"""The PNG of a timeline, drawn with matplotlib (Agg, no display); imported only when a PNG is asked for.

It draws what :mod:`oscar_plugins._timeline` laid out (bars by colour, groups, labels) and knows nothing else.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["MAX_LABELLED", "render_png"]

#: Above this many rows, rows are not labelled one by one (the groups still are).
MAX_LABELLED = 60
_DPI = 100
#: Inches above the plot (title, totals, legend) and below it (the time axis).
_TOP, _BOTTOM = 1.15, 0.7

Bars = dict[str, tuple[list[int], list[float], list[float]]]


def render_png(bars: Bars, groups: Sequence[tuple[str, int, int]], labels: Sequence[str], title: str,
               summary: str, legend: Sequence[tuple[str, str]]) -> bytes:
    """PNG bytes: ``bars`` (colour -> lines, lefts, widths), a shaded band and a label per group (name, first
    line, last line), ``labels`` one per line (shown up to :data:`MAX_LABELLED` lines)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    lines = max(1, len(labels))
    labelled = lines <= MAX_LABELLED
    height = min(_TOP + _BOTTOM + lines * (0.26 if labelled else 0.02), 24.0)
    height = max(height, _TOP + _BOTTOM + 1.0)
    fig = Figure(figsize=(13, height), dpi=_DPI)
    left, width = (0.2, 0.56) if labelled else (0.04, 0.72)
    ax = fig.add_axes((left, _BOTTOM / height, width, 1 - (_TOP + _BOTTOM) / height))
    thickness = 0.7 if labelled else 1.0
    for colour, (ys, lefts, widths) in bars.items():  # one call per colour: fast for thousands of rows
        ax.barh(ys, widths, left=lefts, height=thickness, color=colour, linewidth=0, antialiased=labelled)
    for g, (name, first, last) in enumerate(groups):
        if g % 2 == 0:
            ax.axhspan(first - 0.5, last + 0.5, color="#eef1f8", zorder=0, linewidth=0)
        if g:
            ax.axhline(first - 0.5, color="#999999", linewidth=0.6)
        ax.text(1.01, (first + last) / 2, name, transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize=9 if labelled else 8, fontweight="bold")
    ax.set_ylim(lines - 0.5, -0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the batch started")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if labelled:
        ax.set_yticks(range(len(labels)), list(labels), fontsize=8)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(labels)} rows, one per job or step")
    fig.text(0.02, 1 - 0.15 / height, title, ha="left", va="top", fontsize=13, fontweight="bold")
    fig.text(0.02, 1 - 0.5 / height, summary, fontsize=9, ha="left", va="top")
    fig.legend(handles=[Patch(color=colour, label=name) for name, colour in legend], loc="upper left",
               ncol=len(legend), fontsize=8, frameon=False, bbox_to_anchor=(0.015, 1 - 0.72 / height))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()
