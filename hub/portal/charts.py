"""Charts drawn on the server as inline SVG: no chart library, nothing fetched, readable
without scripts. Labels come translated from the caller."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from hub.demand.report import TARGET_COMPLETION, Tally
from hub.portal.quality import GateRunPoint

PASS, FAIL = "#2e7d32", "#c62828"
BUCKETS = (
    ("met", "#2e7d32"),
    ("pending", "#f9a825"),
    ("refused", "#c62828"),
    ("unmatched", "#6a1b9a"),
    ("lapsed", "#757575"),
)


def completion_chart(
    title: str, groups: dict[str, Tally], names: dict[str, str], labels: dict[str, str]
) -> str:
    """A stacked bar per group (met, pending, refused, unmatched, lapsed), its completion
    rate and a dashed line at the 80% target."""
    rows = [(key, t) for key, t in groups.items() if t.total]
    label_w, bar_w, row_h = 230, 420, 24
    width = label_w + bar_w + 110
    height = 34 + row_h * max(len(rows), 1) + 34
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (key, tally) in enumerate(rows):
        y = 28 + i * row_h
        out.append(f'<text x="0" y="{y + 15}">{escape(names.get(key, key)[:16])}</text>')
        x = float(label_w)
        for bucket, colour in BUCKETS:
            count = getattr(tally, bucket)
            if count:
                w = bar_w * count / tally.total
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                    f'fill="{colour}"><title>{escape(labels[bucket])}: {count}</title></rect>'
                )
                x += w
        rate = tally.completion_rate or 0.0
        colour = PASS if rate >= TARGET_COMPLETION else FAIL
        out.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" fill="{colour}">'
            f"{rate:.0%} ({tally.met}/{tally.total})</text>"
        )
    bottom = 28 + row_h * max(len(rows), 1)
    target_x = label_w + bar_w * TARGET_COMPLETION
    out.append(
        f'<line x1="{target_x:.1f}" y1="24" x2="{target_x:.1f}" y2="{bottom}" stroke="#000" '
        f'stroke-dasharray="4 3"/><text x="{target_x - 24:.1f}" y="{bottom + 13}" '
        f'font-size="11">{escape(labels["target"])} 80%</text>'
    )
    x = 0
    for bucket, colour in BUCKETS:
        out.append(
            f'<rect x="{x}" y="{bottom + 20}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{bottom + 29}" font-size="11">{escape(labels[bucket])}</text>'
        )
        x += 96
    out.append("</svg>")
    return "".join(out)


def gate_history_chart(
    title: str, runs: Sequence[GateRunPoint], labels: dict[str, str], *, rejects: bool
) -> str:
    """One bar per gate run, oldest on the left: candidate rows (``rejects=False``) or
    rejected rows (``rejects=True``), green when the run passed, red when it failed."""
    width, height, left, top, bottom = 560, 170, 56, 24, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" class="chart-title">{escape(title)}</text>',
    ]
    if not runs:
        return (
            f'<svg class="chart" viewBox="0 0 {width} 44" width="100%" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="0" y="14" class="chart-title">{escape(title)}</text>'
            f'<text x="0" y="36" fill="#616e7c">{escape(labels["none"])}</text></svg>'
        )
    values = [r.rejected_rows if rejects else r.candidate_rows for r in runs]
    peak = max(max(values), 1)
    step = plot_w / len(runs)
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#888"/>'
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" font-size="11">{peak:,}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>'
    )
    for i, (run, value) in enumerate(zip(runs, values, strict=True)):
        h = plot_h * value / peak
        x = left + i * step + step * 0.15
        colour = PASS if run.passed else FAIL
        verdict = labels["pass"] if run.passed else labels["fail"]
        out.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.7:.1f}" '
            f'height="{max(h, 1):.1f}" fill="{colour}"><title>'
            f"{run.finished_at:%Y-%m-%d %H:%M} {verdict}: {value:,}</title></rect>"
        )
    first, last = runs[0].finished_at, runs[-1].finished_at
    out.append(
        f'<text x="{left}" y="{height - 8}" font-size="11">{first:%m-%d %H:%M}</text>'
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{last:%m-%d %H:%M}</text></svg>"
    )
    return "".join(out)
