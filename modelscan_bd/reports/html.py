"""The HTML report: one self-contained, offline file rendered from the JSON report.

Everything is inline (CSS, SVG charts, PNG artifacts as data: URIs) so the file can be
attached to a ticket or a CI run and opened anywhere. Jinja2 autoescaping is on and the
SVG helpers build markup with ``Markup.format``, which escapes every interpolated value:
labels and messages come from untrusted model repos.
"""
from __future__ import annotations

import functools
import json
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATE = "report.html.j2"
_MAX_LIST_ITEMS = 12  # evidence lists longer than this are cut, with a count of the rest
_MAX_VALUE_CHARS = 400
_CHART_W, _CHART_H = 340, 150
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 10, 10, 24  # chart margins, room for tick labels


def render_html(report: dict[str, Any]) -> str:
    """Render a (validated) report dict to a complete HTML document."""
    findings = report["findings"]
    return _environment().get_template(TEMPLATE).render(
        r=report,
        labels=report["family"].get("labels") or [],
        safety=[f for f in findings if f["detector"] == "safety"],
        detectors=_group_by_detector(findings),
        not_run=[f for f in findings if f["status"] in ("skipped", "errored")],
    )


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelscan_bd", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, compact=fmt_compact, size=fmt_size)
    env.globals.update(line_chart=line_chart, bar_chart=bar_chart, class_name=class_name)
    return env


def _group_by_detector(findings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Detector cards: findings that ran to a result, in report order, grouped by detector."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        if finding["detector"] != "safety" and finding["status"] in ("passed", "failed"):
            groups.setdefault(finding["detector"], []).append(finding)
    return groups


# ---- value formatting -------------------------------------------------------------

def fmt_num(value: Any, digits: int = 4) -> str:
    """Numbers for people: None as a dash, floats to ``digits`` significant figures."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def fmt_compact(value: Any) -> str:
    """A table cell: scalars as themselves, containers as compact JSON with long lists cut."""
    if not isinstance(value, (dict, list)):
        return fmt_num(value)
    text = json.dumps(_cut_lists(value), separators=(", ", ": "), ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _cut_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _cut_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        head = [_cut_lists(v) for v in value[:_MAX_LIST_ITEMS]]
        rest = len(value) - _MAX_LIST_ITEMS
        return head + [f"… {rest} more"] if rest > 0 else head
    return value


def fmt_size(num_bytes: int) -> str:
    """File sizes in binary units (1.5 MiB), exact bytes below 1 KiB."""
    if num_bytes < 1024:
        return f"{num_bytes} B"
    size = float(num_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"


def class_name(index: int, labels: list[str]) -> str:
    """``3 (cat)`` when the model names its classes, else just ``3``."""
    return f"{index} ({labels[index]})" if 0 <= index < len(labels) else str(index)


# ---- inline SVG charts ------------------------------------------------------------

def _svg(title: str, body: Markup) -> Markup:
    return Markup('<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
                  'aria-label="{t}"><title>{t}</title>{b}</svg>').format(
        w=_CHART_W, h=_CHART_H, t=title, b=body)


def _axes() -> Markup:
    x0, y0 = _LEFT, _CHART_H - _BOTTOM
    return Markup('<path class="axis" d="M{x0} {top}V{y0}H{x1}"/>').format(
        x0=x0, y0=y0, top=_TOP, x1=_CHART_W - _RIGHT)


def _text(x: float, y: float, text: str, anchor: str = "middle") -> Markup:
    return Markup('<text x="{x:.1f}" y="{y:.1f}" text-anchor="{a}">{t}</text>').format(
        x=x, y=y, a=anchor, t=text)


def line_chart(path: list[list[float]], num_classes: int) -> Markup:
    """Clean accuracy against exposure step, with the 1/C chance line dashed."""
    if not path:
        return Markup('<p class="muted">No accuracy path recorded.</p>')
    steps = [p[0] for p in path]
    first, last = min(steps), max(steps)
    plot_w, plot_h = _CHART_W - _LEFT - _RIGHT, _CHART_H - _TOP - _BOTTOM

    def x(step: float) -> float:
        return _LEFT + (step - first) / ((last - first) or 1) * plot_w

    def y(acc: float) -> float:
        return _TOP + (1 - min(max(acc, 0.0), 1.0)) * plot_h

    points = " ".join(f"{x(s):.1f},{y(a):.1f}" for s, a in path)
    parts = [_axes(), Markup('<polyline class="line" points="{}"/>').format(points)]
    if num_classes > 0:
        chance = 1 / num_classes
        parts.append(Markup('<line class="chance" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}">'
                            '<title>chance 1/{c} = {v}</title></line>').format(
            x0=_LEFT, x1=_CHART_W - _RIGHT, y=y(chance), c=num_classes, v=fmt_num(chance, 3)))
        parts.append(_text(_CHART_W - _RIGHT, y(chance) - 3, "chance", anchor="end"))
    parts += [_text(_LEFT - 4, y(1) + 4, "1", "end"), _text(_LEFT - 4, y(0) + 4, "0", "end"),
              _text(x(first), _CHART_H - 8, fmt_num(first)), _text(x(last), _CHART_H - 8, fmt_num(last)),
              _text(_LEFT + plot_w / 2, _CHART_H - 8, "step")]
    return _svg("Clean accuracy during exposure", Markup("").join(parts))


def bar_chart(counts: list[int], highlight: int, labels: list[str], title: str) -> Markup:
    """Predictions per class; the ``highlight`` class (the top label) stands out."""
    if not counts:
        return Markup('<p class="muted">No histogram recorded.</p>')
    plot_w, plot_h = _CHART_W - _LEFT - _RIGHT, _CHART_H - _TOP - _BOTTOM
    slot, peak = plot_w / len(counts), max(max(counts), 1)
    parts = [_axes(), _text(_LEFT - 4, _TOP + 8, fmt_num(peak), "end"),
             _text(_LEFT - 4, _CHART_H - _BOTTOM, "0", "end")]
    for i, count in enumerate(counts):
        if count:  # empty classes draw nothing; keeps 1000-class charts small
            h = count / peak * plot_h
            parts.append(Markup('<rect class="{c}" x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}">'
                                '<title>class {n}: {k}</title></rect>').format(
                c="bar hl" if i == highlight else "bar", x=_LEFT + i * slot + slot * 0.1,
                y=_CHART_H - _BOTTOM - h, w=slot * 0.8, h=h, n=class_name(i, labels), k=count))
    ticks = range(len(counts)) if len(counts) <= 20 else sorted({0, len(counts) - 1, highlight})
    parts += [_text(_LEFT + (i + 0.5) * slot, _CHART_H - 8, str(i)) for i in ticks if 0 <= i < len(counts)]
    return _svg(title, Markup("").join(parts))
