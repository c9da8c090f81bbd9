"""The overview's chart, drawn on the server as inline SVG (the pages' CSP allows no scripts): deliveries per
day, one stacked bar a day, one colour a channel, with the numbers as text so the picture never has to be
guessed at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from connector.core.wording import CHANNEL, said

WIDTH, HEIGHT = 640, 220
TOP, BOTTOM, LEFT, RIGHT = 16, 40, 36, 120
COLOURS = {"max": "#5b5bd6", "telegram": "#2aa3df", "whatsapp": "#25a244", "sms": "#c77c02"}
SPARE = ("#8e5cc2", "#d0445c", "#5d7a8c", "#a3a31a")


def deliveries_svg(days: Sequence[datetime], series: dict[str, list[int]]) -> Markup:
    """A stacked bar per day of `days` (local midnights), a layer per channel of `series`."""
    totals = [sum(counts[i] for counts in series.values()) for i in range(len(days))]
    top = max([*totals, 1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = slot * 0.62
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Доставлено по каналам за {len(days)} дней">',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#c5cad3"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" class="axis">{top}</text>',
             f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" class="axis">0</text>']
    colours = _colours(series)
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = float(TOP + plot_h)
        for channel, counts in series.items():
            if counts[i]:
                height = counts[i] / top * plot_h
                y -= height
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                             f'fill="{colours[channel]}"><title>{escape(said(CHANNEL, channel))}, '
                             f'{day:%d.%m}: {counts[i]}</title></rect>')
        middle = x + bar / 2
        if totals[i]:
            parts.append(f'<text x="{middle:.1f}" y="{y - 4:.1f}" text-anchor="middle" class="total">{totals[i]}'
                         '</text>')
        parts.append(f'<text x="{middle:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" class="axis">'
                     f'{day:%d.%m}</text>')
    for row, channel in enumerate(series):
        y = TOP + row * 18
        parts.append(f'<rect x="{WIDTH - RIGHT + 16}" y="{y}" width="12" height="12" fill="{colours[channel]}"/>'
                     f'<text x="{WIDTH - RIGHT + 34}" y="{y + 10}" class="legend">'
                     f'{escape(said(CHANNEL, channel))}: {sum(series[channel])}</text>')
    if not series:
        parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
                     'class="axis">за эти дни ничего не доставлено</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _colours(series: dict[str, list[int]]) -> dict[str, str]:
    spare = iter(SPARE * (len(series) // len(SPARE) + 1))
    return {channel: COLOURS.get(channel) or next(spare) for channel in series}
