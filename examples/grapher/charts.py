"""Server-rendered SVG charts: no JavaScript, no inline styles, so a strict CSP holds.

Every chart is a ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that lists its numbers,
and every bar carries its own ``<title>`` (the browser shows it as a tooltip). Text is escaped by
:func:`element`; colours are presentation attributes, which CSP does not treat as inline style.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from markupsafe import Markup, escape

from examples.grapher.finances import InstitutionBalance, MonthlySpending, format_money

SVG_NS = "http://www.w3.org/2000/svg"
#: distinguishable colours (Tableau 10 order) that keep 3:1 contrast on white
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f", "#edc948")
WIDTH = 640


def colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per institution, the same in every chart."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def element(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """``<tag a="v">children</tag>``; attribute values and plain-text children are escaped."""
    attributes = "".join(f' {name}="{escape(_number(value))}"'
                         for name, value in (attrs or {}).items() if value is not None)
    # Safe: tag names are ours, and every value and text child went through escape().
    if not children:
        return Markup(f"<{tag}{attributes}/>")  # noqa: S704
    inner = "".join(str(escape(child)) for child in children)  # Markup children pass through
    return Markup(f"<{tag}{attributes}>{inner}</{tag}>")  # noqa: S704


def _number(value: object) -> object:
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    return value


def _svg(chart_id: str, height: float, title: str, desc: str, *children: Markup) -> Markup:
    return element(
        "svg",
        {"xmlns": SVG_NS, "viewBox": f"0 0 {WIDTH} {_number(height)}", "class": "chart",
         "id": chart_id, "role": "img", "aria-labelledby": f"{chart_id}-title {chart_id}-desc"},
        element("title", {"id": f"{chart_id}-title"}, title),
        element("desc", {"id": f"{chart_id}-desc"}, desc),
        *children,
    )


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def balance_chart(balances: Sequence[InstitutionBalance], currency: str,
                  palette: Mapping[str, str]) -> Markup:
    """Horizontal bars, one per institution, from a zero line (overdrawn and card debt go left)."""
    label_w, value_w, row, bar_h, pad = 170, 120, 34, 20, 8
    plot_w = WIDTH - label_w - value_w - 2 * pad
    height = 2 * pad + row * max(len(balances), 1)
    values = [b.value for b in balances]
    low, high = min([0, *values]), max([0, *values])
    span = (high - low) or 1

    def x(value: float) -> float:
        return label_w + pad + (value - low) / span * plot_w

    parts: list[Markup] = []
    for i, item in enumerate(balances):
        top = pad + i * row
        middle = top + row / 2
        amount = format_money(item.value, currency)
        start, end = sorted((x(0), x(item.value)))
        parts.append(element(
            "g", {"class": "bar", "data-institution": item.name},
            element("title", None, f"{item.name}: {amount}"),
            element("text", {"class": "label", "x": label_w, "y": middle, "dy": "0.35em",
                             "text-anchor": "end"}, _short(item.name)),
            element("rect", {"x": start, "y": middle - bar_h / 2, "width": max(end - start, 1.0),
                             "height": bar_h, "fill": palette.get(item.name, PALETTE[0])}),
            element("text", {"class": "value", "x": WIDTH - pad, "y": middle, "dy": "0.35em",
                             "text-anchor": "end"}, amount),
        ))
    zero = x(0)
    parts.append(element("line", {"class": "axis", "x1": zero, "x2": zero, "y1": pad / 2,
                                  "y2": height - pad / 2, "stroke": "#6b7280"}))
    desc = "; ".join(f"{b.name}: {format_money(b.value, currency)}" for b in balances) or "No balances."
    return _svg("balances", height, "Balances by institution", desc, *parts)


def nice_step(raw: float) -> int:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least ``raw`` (axis ticks people can read)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return round(next(f for f in (1, 2, 2.5, 5, 10) if f * power >= raw) * power)


def spending_chart(spending: MonthlySpending, currency: str, palette: Mapping[str, str]) -> Markup:
    """Stacked monthly bars, one colour per institution, with a legend above the plot."""
    names = list(spending.series)
    legend, legend_h = _legend(names, palette)
    left, right, bottom, ticks = 78, 8, 34, 4
    plot_top, plot_h = legend_h + 12, 220
    height = plot_top + plot_h + bottom
    totals = [sum(values[i] for values in spending.series.values()) for i in range(len(spending.months))]
    step = nice_step(max(totals, default=0) / ticks)
    top = step * max(1, math.ceil(max(totals, default=0) / step))
    plot_w = WIDTH - left - right

    def y(value: float) -> float:
        return plot_top + plot_h - value / top * plot_h

    parts: list[Markup] = [legend]
    for tick in range(0, top + 1, step):
        parts.append(element("line", {"class": "grid", "x1": left, "x2": WIDTH - right, "y1": y(tick),
                                      "y2": y(tick), "stroke": "#e5e7eb"}))
        parts.append(element("text", {"class": "tick", "x": left - 6, "y": y(tick), "dy": "0.35em",
                                      "text-anchor": "end"}, format_money(tick, currency, whole=True)))
    band = plot_w / max(len(spending.months), 1)
    bar_w = band * 0.62
    for i, month in enumerate(spending.months):
        x = left + i * band + (band - bar_w) / 2
        stacked = 0
        for name in names:
            value = spending.series[name][i]
            if value <= 0:
                continue
            parts.append(element(
                "rect", {"x": x, "y": y(stacked + value), "width": bar_w,
                         "height": y(stacked) - y(stacked + value), "fill": palette.get(name, PALETTE[0]),
                         "data-institution": name, "data-month": f"{month:%Y-%m}"},
                element("title", None, f"{name}, {month:%B %Y}: {format_money(value, currency)}"),
            ))
            stacked += value
        year = f"{month:%Y}" if i == 0 or month.month == 1 else None
        parts.append(element(
            "text", {"class": "month", "x": x + bar_w / 2, "y": plot_top + plot_h + 14,
                     "text-anchor": "middle"},
            f"{month:%b}", *([element("tspan", {"x": x + bar_w / 2, "dy": "1.1em"}, year)] if year else []),
        ))
    parts.append(element("line", {"class": "axis", "x1": left, "x2": WIDTH - right, "y1": y(0),
                                  "y2": y(0), "stroke": "#6b7280"}))
    desc = "; ".join(
        f"{name}: " + ", ".join(f"{m:%b %Y} {format_money(v, currency)}"
                                for m, v in zip(spending.months, spending.series[name], strict=True))
        for name in names
    ) or "No spending."
    return _svg("spending", height, "Spending per month", desc, *parts)


def _legend(names: Sequence[str], palette: Mapping[str, str]) -> tuple[Markup, float]:
    """Swatch + name per institution, wrapped into rows; returns the legend and its height."""
    row_h, x, y, items = 22, 0.0, 0.0, []
    for name in names:
        label = _short(name, 30)
        width = 18 + 7.2 * len(label) + 18
        if x and x + width > WIDTH:
            x, y = 0.0, y + row_h
        items.append(element(
            "g", {"class": "legend-item", "data-institution": name},
            element("rect", {"x": x, "y": y + 5, "width": 12, "height": 12, "rx": 2,
                             "fill": palette.get(name, PALETTE[0])}),
            element("text", {"class": "legend-label", "x": x + 18, "y": y + 11, "dy": "0.35em"}, label),
        ))
        x += width
    return element("g", {"class": "legend"}, *items) if items else Markup(""), (y + row_h if names else 0)
