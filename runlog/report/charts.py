"""Charts as inline SVG: runs per status over time, and members by status for a batch.

Bars are grouped by day, week (from Monday) or month, whichever keeps at most MAX_BUCKETS
bars over the selection's period. Deterministic: the buckets come from the records' own
`created` times, never from the clock."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from runlog.report.graph import esc

MAX_BUCKETS = 60
STATUS_ORDER = ("COMPLETED", "RUNNING", "STARTING", "PENDING", "STOPPING", "FAILED", "CANCELLED", "DELETED",
                "REJECTED", "ABANDONED", "UNKNOWN")


def status_key(status: str) -> tuple[int, str]:
    return (STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER), status)


def css_status(status: str) -> str:
    """The CSS class for a status (classes for unknown statuses are a safe slug)."""
    slug = "".join(ch for ch in status.lower() if ch.isalnum()) or "unknown"
    return "st-" + slug


def _bucket(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next(day: date, unit: str) -> date:
    if unit == "week":
        return day + timedelta(days=7)
    if unit == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


def _days(created: list[str]) -> list[date]:
    out = []
    for text in created:
        try:
            out.append(date.fromisoformat(text[:10]))
        except ValueError:
            continue
    return out


def runs_over_time(points: list[tuple[str, str]]) -> str:
    """(created, status) of each run -> a stacked bar chart, one bar per day, week or month."""
    days = _days([created for created, _ in points])
    if not days:
        return '<p class="empty">No runs to chart.</p>'
    first, last = min(days), max(days)
    for unit in ("day", "week", "month"):
        buckets: list[date] = []
        at = _bucket(first, unit)
        while at <= last and len(buckets) <= MAX_BUCKETS * 40:
            buckets.append(at)
            at = _next(at, unit)
        if len(buckets) <= MAX_BUCKETS:
            break
    counts: dict[date, Counter] = {b: Counter() for b in buckets}
    for created, status in points:
        try:
            day = date.fromisoformat(created[:10])
        except ValueError:
            continue
        counts.setdefault(_bucket(day, unit), Counter())[status] += 1
    statuses = sorted({status for _, status in points}, key=status_key)
    tallest = max(sum(c.values()) for c in counts.values()) or 1
    bar_w = max(6, min(40, 720 // max(len(buckets), 1)))
    left, top, plot_h = 44, 12, 160
    width = max(600, left + len(buckets) * (bar_w + 4) + 16)
    height = top + plot_h + 46
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-label="runs per status per {unit}">',
           f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"/>',
           f'<text class="tick" x="{left - 6}" y="{top + 8}" text-anchor="end">{tallest}</text>',
           f'<text class="tick" x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']
    every = max(1, len(buckets) // 8)
    for i, bucket in enumerate(buckets):
        x = left + 4 + i * (bar_w + 4)
        y = top + plot_h
        for status in statuses:
            n = counts[bucket][status]
            if not n:
                continue
            h = max(1, round(n * plot_h / tallest))
            y -= h
            out.append(f'<rect class="bar {css_status(status)}" x="{x}" y="{y}" width="{bar_w}" height="{h}">'
                       f'<title>{esc(bucket.isoformat())} ({unit}): {n} {esc(status)}</title></rect>')
        if i % every == 0:
            label = bucket.isoformat()[:7] if unit == "month" else bucket.isoformat()[5:]
            out.append(f'<text class="tick" x="{x}" y="{top + plot_h + 16}">{esc(label)}</text>')
    out.append(f'<text class="tick" x="{left}" y="{height - 6}">runs per {unit}, by latest known status '
               f'({esc(first.isoformat())} to {esc(last.isoformat())})</text>')
    out.append("</svg>")
    return "\n".join(out)


def by_status(title: str, statuses: list[str], note: str = "") -> str:
    """One horizontal bar split by status (a batch's runs, each once), `note` after the count."""
    counts = Counter(statuses)
    total = sum(counts.values())
    if not total:
        return f'<p class="empty">{esc(title)}: no members in this report.</p>'
    width, bar_h = 720, 22
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width + 20}" height="{bar_h + 40}" '
           f'viewBox="0 0 {width + 20} {bar_h + 40}" aria-label="{esc(title)}">',
           f'<text class="tick" x="10" y="14">{esc(title)}: {total} run(s){esc(note)}</text>']
    x = 10.0
    for status in sorted(counts, key=status_key):
        w = counts[status] * width / total
        out.append(f'<rect class="bar {css_status(status)}" x="{x:.1f}" y="20" width="{w:.1f}" height="{bar_h}">'
                   f'<title>{counts[status]} {esc(status)}</title></rect>')
        x += w
    out.append("</svg>")
    return "\n".join(out)
