"""Server-rendered SVG charts over days: lines with points, interval bands, stacked step
areas, markers and hatched spans. No library, nothing fetched: every page works offline.

Each series is a `<g class="series" data-series="...">` holding its `circle.pt` points;
every point, marker and bar carries `data-tip`, the text the page's script shows on hover.
Day i is drawn centred on x(i), so that a day of a step area spans x(i - 0.5)..x(i + 0.5)
and a line's point sits in the middle of its day.
"""

import functools
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE = (
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
)
LABELS = 6  # dates written under the x axis


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def attr(text: str) -> str:
    return escape(str(text), quote=True)


@dataclass(frozen=True)
class Frame:
    days: int
    low: float = 0.0
    high: float = 1.0
    width: int = 760
    height: int = 220
    left: int = 52
    right: int = 12
    top: int = 10
    bottom: int = 26

    def x(self, i: float) -> float:
        plot = self.width - self.left - self.right
        return round(self.left + plot * (i + 0.5) / max(self.days, 1), 1)

    @functools.cached_property
    def xs(self) -> list[float]:
        """x of each day's centre, worked out once: a year of points asks thousands of times."""
        return [self.x(i) for i in range(self.days)]

    def y(self, value: float) -> float:
        plot = self.height - self.top - self.bottom
        span = (self.high - self.low) or 1.0
        return round(self.top + plot * (1 - (value - self.low) / span), 1)


def svg(chart_id: str, frame: Frame, label: str, parts: list[str], outside: str = "") -> str:
    """The chart: `parts` clipped to the plot area, `outside` (the axes) not."""
    clip = f"clip-{chart_id}"
    w, h = frame.width, frame.height
    inner = frame.height - frame.top - frame.bottom
    return (
        f'<svg class="chart" id="{attr(chart_id)}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{attr(label)}"><defs><clipPath id="{clip}"><rect x="{frame.left}" '
        f'y="{frame.top}" width="{w - frame.left - frame.right}" height="{inner}"/>'
        f'</clipPath><pattern id="hatch-{chart_id}" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" '
        'x2="0" y2="6" stroke="#bbb" stroke-width="2"/></pattern></defs>'
        f'<g clip-path="url(#{clip})">{"".join(parts)}</g>{outside}</svg>'
    )


def y_axis(frame: Frame, ticks: list[float], fmt) -> str:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y}" y2="{y}"/><text class="tick" x="{frame.left - 4}" y="{y + 4}" '
            f'text-anchor="end">{attr(fmt(tick))}</text>'
        )
    return "".join(parts)


def x_axis(frame: Frame, days: list[date]) -> str:
    if not days:
        return ""
    step = max(1, len(days) // LABELS)
    y = frame.height - 8
    return "".join(
        f'<text class="tick" x="{frame.x(i)}" y="{y}" text-anchor="middle">'
        f"{days[i].isoformat()}</text>"
        for i in range(0, len(days), step)
    )


def axes(frame: Frame, days: list[date], ticks: list[float], fmt) -> str:
    """Unclipped: drawn outside the plot area, so it goes after the clipped group."""
    return y_axis(frame, ticks, fmt) + x_axis(frame, days)


def runs_of(indices: list[int]) -> list[list[int]]:
    """Consecutive stretches of day indices: a gap in the data is a gap in the line."""
    found: list[list[int]] = []
    for i in indices:
        if found and i == found[-1][-1] + 1:
            found[-1].append(i)
        else:
            found.append([i])
    return found


def path(frame: Frame, points: dict[int, float]) -> str:
    pieces = []
    for stretch in runs_of(sorted(points)):
        coords = " L".join(f"{frame.xs[i]} {frame.y(points[i])}" for i in stretch)
        pieces.append(f"M{coords}")
    return " ".join(pieces)


def dots(frame: Frame, points: dict[int, float], tips: dict[int, str], fill: str) -> str:
    return "".join(
        f'<circle class="pt" cx="{frame.xs[i]}" cy="{frame.y(v)}" r="2.6" fill="{fill}" '
        f'data-tip="{attr(tips[i])}"/>'
        for i, v in sorted(points.items())
    )


def line(frame: Frame, name: str, index: int, points: dict, tips: dict) -> str:
    """One series: a line through its days (broken at gaps) with a point on each."""
    fill = color(index)
    return (
        f'<g class="series" data-series="{attr(name)}">'
        f'<path d="{path(frame, points)}" fill="none" stroke="{fill}" stroke-width="1.6"/>'
        f"{dots(frame, points, tips, fill)}</g>"
    )


def dashed(frame: Frame, name: str, index: int, points: dict) -> str:
    """A step line without points (a planned share): flat across each day."""
    pieces = []
    for stretch in runs_of(sorted(points)):
        coords = []
        for i in stretch:
            y = frame.y(points[i])
            coords += [f"{frame.x(i - 0.5)} {y}", f"{frame.x(i + 0.5)} {y}"]
        pieces.append("M" + " L".join(coords))
    steps = " ".join(pieces)
    return (
        f'<g class="planned" data-series="{attr(name)}"><path d="{steps}" fill="none" '
        f'stroke="{color(index)}" stroke-width="1.4" stroke-dasharray="4 3"/></g>'
    )


def band(frame: Frame, index: int, bounds: dict[int, tuple[float, float]]) -> str:
    """A shaded interval: the upper bound forward, then the lower bound back."""
    shapes = []
    for stretch in runs_of(sorted(bounds)):
        upper = [f"{frame.x(i)} {frame.y(bounds[i][1])}" for i in stretch]
        lower = [f"{frame.x(i)} {frame.y(bounds[i][0])}" for i in reversed(stretch)]
        shapes.append(
            f'<path class="band" d="M{" L".join(upper + lower)} Z" fill="{color(index)}" '
            'fill-opacity="0.18" stroke="none"/>'
        )
    return "".join(shapes)


def stacked_steps(frame: Frame, names: list[str], shares: dict[int, list], tips) -> str:
    """One stacked step area per arm; shares[i][k] is arm k's share on day i (or None),
    tips(i, k) the text of its point, drawn in the middle of its slice of the day."""
    groups = []
    for k, name in enumerate(names):
        days = sorted(i for i, row in shares.items() if row[k] is not None)
        floor = {i: sum(s or 0 for s in shares[i][:k]) for i in days}
        top = {i: floor[i] + shares[i][k] for i in days}
        area = "".join(step_area(frame, stretch, floor, top, color(k)) for stretch in runs_of(days))
        middle = {i: (floor[i] + top[i]) / 2 for i in days}
        groups.append(
            f'<g class="series" data-series="{attr(name)}">{area}'
            f"{dots(frame, middle, {i: tips(i, k) for i in days}, '#fff')}</g>"
        )
    return "".join(groups)


def step_area(frame: Frame, stretch: list[int], floor: dict, top: dict, fill: str) -> str:
    upper, lower = [], []
    for i in stretch:
        left, right = frame.x(i - 0.5), frame.x(i + 0.5)
        upper += [f"{left} {frame.y(top[i])}", f"{right} {frame.y(top[i])}"]
        lower += [f"{left} {frame.y(floor[i])}", f"{right} {frame.y(floor[i])}"]
    outline = " L".join(upper + lower[::-1])
    return f'<path d="M{outline} Z" fill="{fill}" fill-opacity="0.85" stroke="none"/>'


def markers(frame: Frame, changes: dict[int, str]) -> str:
    """A vertical line where something changed (the reason of the split), its text on hover."""
    bottom = frame.height - frame.bottom
    return "".join(
        f'<line class="mark" x1="{frame.x(i - 0.5)}" x2="{frame.x(i - 0.5)}" y1="{frame.top}" '
        f'y2="{bottom}" data-tip="{attr(text)}"/>'
        for i, text in sorted(changes.items())
    )


def hatched(frame: Frame, chart_id: str, indices: list[int], label: str) -> str:
    """Hatched background over each stretch of the given days (exploration)."""
    inner = frame.height - frame.top - frame.bottom
    return "".join(
        f'<rect class="hatch" x="{frame.x(s[0] - 0.5)}" y="{frame.top}" '
        f'width="{round(frame.x(s[-1] + 0.5) - frame.x(s[0] - 0.5), 1)}" height="{inner}" '
        f'fill="url(#hatch-{chart_id})" data-tip="{attr(label)}"/>'
        for s in runs_of(indices)
    )


def interval_bar(low: float, high: float, mean: float, span: tuple, index: int, tip: str) -> str:
    """A small horizontal 95% interval with its mean, on a scale shared by the arms."""
    width, pad = 200, 6
    start, end = span
    scale = (width - 2 * pad) / ((end - start) or 1.0)

    def x(value: float) -> float:
        return round(pad + (value - start) * scale, 1)

    return (
        f'<svg class="ibar" viewBox="0 0 {width} 14" width="{width}" height="14">'
        f'<g data-tip="{attr(tip)}"><line x1="{x(low)}" x2="{x(high)}" y1="7" y2="7" '
        f'stroke="{color(index)}" stroke-width="6" stroke-linecap="round" opacity="0.5"/>'
        f'<circle cx="{x(mean)}" cy="7" r="4" fill="{color(index)}"/></g></svg>'
    )


def split_bar(shares: list[tuple[str, float]], width: int = 140) -> str:
    """Today's split as one thin stacked bar."""
    parts, left = [], 0.0
    for k, (name, share) in enumerate(shares):
        w = round(share * width, 2)
        parts.append(
            f'<rect x="{round(left, 2)}" y="0" width="{w}" height="12" fill="{color(k)}" '
            f'data-tip="{attr(f"{name}: {share * 100:.1f}%")}"/>'
        )
        left += share * width
    box = f'viewBox="0 0 {width} 12" width="{width}" height="12"'
    return f'<svg class="sbar" {box}>{"".join(parts)}</svg>'
