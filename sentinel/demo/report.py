"""The demo's end: a table per fault on the terminal, and a Markdown report
with a timeline image (SVG, drawn here: no plotting dependency)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from sentinel.demo.timeline import Event, FaultWindow

_COLORS = {
    "fault": "#d62728",
    "finding": "#ff7f0e",
    "incident": "#9467bd",
    "step": "#1f77b4",
    "verify": "#2ca02c",
    "resolved": "#2ca02c",
    "skip": "#8c564b",
    "page": "#e377c2",
    "notify": "#7f7f7f",
}


def _fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f} s"


def table(faults: list[FaultWindow]) -> str:
    """A plain-text table, one row per fault."""
    header = ("fault", "detect", "mitigate", "actions", "pages", "result")
    rows = [
        (
            f.name,
            _fmt(f.time_to_detect),
            _fmt(f.time_to_mitigate),
            ", ".join(f.actions) or "—",
            str(len(f.pages)),
            "ok" if f.ok else f"FAILED: {f.note}",
        )
        for f in faults
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def svg_timeline(events: list[Event], faults: list[FaultWindow], width: int = 960) -> str:
    """Fault windows as bands, events as ticks on one row per stage."""
    stages = [s for s in _COLORS if any(e.stage == s for e in events)]
    end = max((e.t for e in events), default=1.0) * 1.02 + 1e-9
    row_h, left, top = 22, 90, 30
    height = top + row_h * len(stages) + 30

    def x(t: float) -> float:
        return left + (width - left - 10) * t / end

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i, f in enumerate(faults):
        if f.injected_at is None:
            continue
        stop = f.mitigated_at if f.mitigated_at is not None else end
        fill = "#eef5ff" if i % 2 == 0 else "#f5f5f5"
        parts.append(
            f'<rect x="{x(f.injected_at):.1f}" y="{top - 18}" '
            f'width="{max(2.0, x(stop) - x(f.injected_at)):.1f}" height="{height - top}" '
            f'fill="{fill}"/>'
        )
        parts.append(f'<text x="{x(f.injected_at) + 2:.1f}" y="{top - 6}">{escape(f.name)}</text>')
    for row, stage in enumerate(stages):
        y = top + row * row_h + row_h / 2
        parts.append(f'<text x="4" y="{y + 4:.1f}">{stage}</text>')
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        for e in events:
            if e.stage == stage:
                parts.append(
                    f'<circle cx="{x(e.t):.1f}" cy="{y:.1f}" r="4" fill="{_COLORS[stage]}">'
                    f"<title>{e.t:.1f}s {escape(e.text)}</title></circle>"
                )
    axis_y = height - 12
    for k in range(0, int(end) + 1, max(1, int(end) // 10 or 1)):
        parts.append(f'<text x="{x(k):.1f}" y="{axis_y}">{k}s</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_report(folder: Path, events: list[Event], faults: list[FaultWindow]) -> Path:
    """Write report.md and timeline.svg into ``folder``; returns the report path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timeline.svg").write_text(svg_timeline(events, faults), encoding="utf-8")
    lines = [
        "# sentinel demo report",
        "",
        "![timeline](timeline.svg)",
        "",
        "## Faults",
        "",
        "| fault | what was injected | expected | detect | mitigate | actions | pages | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in faults:
        lines.append(
            f"| {f.name} | {f.description} | {f.expected} | {_fmt(f.time_to_detect)} | "
            f"{_fmt(f.time_to_mitigate)} | {', '.join(f.actions) or '—'} | {len(f.pages)} | "
            f"{'ok' if f.ok else 'FAILED: ' + f.note} |"
        )
    lines += ["", "## Timeline", "", "| t | stage | fault | event |", "|---|---|---|---|"]
    for e in events:
        text = e.text.replace("|", "\\|")
        lines.append(f"| {e.t:.2f}s | {e.stage} | {e.fault or ''} | {text} |")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
