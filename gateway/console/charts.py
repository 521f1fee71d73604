"""Line charts as inline SVG, drawn on the server: one polyline per series over evenly spaced buckets."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 560, 180, 36
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")


def line_chart(title: str, labels: list[str], series: dict[str, list[float | None]], *,
               y_max: float | None = None, percent: bool = False) -> Markup:
    """``series``: name -> one value per label (None: no point there). The y axis runs from 0 to ``y_max`` (the
    largest value when not given)."""
    top = y_max if y_max is not None else max([v for vs in series.values() for v in vs if v is not None] + [1])
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return PAD + i * (WIDTH - 2 * PAD) / (n - 1)

    def y(v: float) -> float:
        return HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD)

    def fmt(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:g}"

    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
           f'<text x="{PAD}" y="16" class="title">{escape(title)}</text>',
           f'<line x1="{PAD}" y1="{y(0):.1f}" x2="{WIDTH - PAD}" y2="{y(0):.1f}" class="axis"/>',
           f'<line x1="{PAD}" y1="{y(top):.1f}" x2="{WIDTH - PAD}" y2="{y(top):.1f}" class="grid"/>',
           f'<text x="{PAD - 4}" y="{y(top) + 4:.1f}" class="tick" text-anchor="end">{fmt(top)}</text>',
           f'<text x="{PAD - 4}" y="{y(0) + 4:.1f}" class="tick" text-anchor="end">{fmt(0)}</text>']
    for i in (0, len(labels) // 2, len(labels) - 1) if labels else ():
        out.append(f'<text x="{x(i):.1f}" y="{HEIGHT - PAD + 16}" class="tick" text-anchor="middle">'
                   f'{escape(labels[i])}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = [(x(i), y(v), v) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, v in points:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}">'
                       f'<title>{escape(name)}: {fmt(v)}</title></circle>')
        out.append(f'<text x="{WIDTH - PAD - 100 * (k + 1)}" y="16" class="legend" fill="{colour}">'
                   f'{escape(name)}</text>')
    if not series:
        out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" class="empty" text-anchor="middle">'
                   'nothing sent in this hour</text>')
    out.append("</svg>")
    return Markup("".join(out))
