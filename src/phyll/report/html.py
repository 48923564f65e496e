"""Plain HTML and CSS building blocks of the report: no JavaScript, every string escaped.

Every text that reaches the page goes through :func:`esc` here (table cells, captions, config
values, titles), so a run name or a CSV column cannot inject markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from phyll.report.figures import Figure

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b;
       background: #f6f7f9; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #e3e6ea; }
p.sub, p.note, figcaption { color: #5a6470; font-size: 13.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 6px; }
.card { border: 1px solid #dfe3e8; border-radius: 8px; padding: 10px 16px; min-width: 130px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { color: #5a6470; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ea; text-align: left; }
th { background: #eef1f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #fff5d6; font-weight: 600; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
figure { margin: 6px 0; } figure.wide { grid-column: 1 / -1; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
dl.config { display: grid; grid-template-columns: max-content 1fr max-content 1fr;
            gap: 3px 14px; font-size: 13.5px; }
dl.config dt { font-weight: 600; } dl.config dd { margin: 0; word-break: break-word; }
pre { background: #f3f5f7; padding: 10px; overflow-x: auto; font-size: 12.5px; }
"""


def esc(value: Any) -> str:
    """``value`` as page text, escaped."""
    return html.escape(str(value), quote=True)


def pct(value: float | None, std: float | None = None) -> str:
    """An accuracy in %, with ``± std`` only where a spread was measured (``std`` given)."""
    if value is None:
        return "—"
    return f"{100 * value:.1f} %" if std is None else f"{100 * value:.1f} ± {100 * std:.1f} %"


def points(value: float | None, std: float | None = None) -> str:
    """An accuracy difference in percentage points, signed."""
    if value is None:
        return "—"
    spread = "" if std is None else f" ± {100 * std:.1f}"
    return f"{100 * value:+.1f}{spread} points"


def num(value: Any) -> str:
    """A count or a measured quantity: integers below a million in full, else 3 significant
    digits (with M, G, T from a million on: 3.5e8 FLOPs is "350 M")."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{value:,.0f}"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def value_text(value: Any) -> str:
    """A configuration value: scalars as they are, lists and mappings as compact JSON."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(", ", ": "))
    return "—" if value is None else str(value)


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    labels: int = 1,
    best: int | None = None,
) -> str:
    """A table; the first ``labels`` columns are text, the rest numbers (right-aligned); row
    ``best`` is highlighted."""
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        out.append('<tr class="best">' if i == best else "<tr>")
        for j, cell in enumerate(row):
            out.append(
                f"<td>{esc(cell)}</td>" if j < labels else f'<td class="num">{esc(cell)}</td>'
            )
        out.append("</tr>")
    return "".join([*out, "</tbody></table>"])


def cards(items: Iterable[tuple[str, str]]) -> str:
    """Headline figures: (value, what it is)."""
    inner = "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for v, k in items
    )
    return f'<div class="cards">{inner}</div>'


def config_list(config: dict[str, Any]) -> str:
    """A configuration as a two-column definition list."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(value_text(v))}</dd>" for k, v in config.items())
    return f'<dl class="config">{items}</dl>'


def details(summary: str, data: Any) -> str:
    """A collapsed block of JSON (opened by the reader, no script)."""
    text = json.dumps(data, indent=2, default=str)
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def figures(figs: Iterable[Figure]) -> str:
    """Figures on a grid: two small ones side by side, a wide one (over 900 px) on its own."""
    items = "".join(
        f'<figure class="{"wide" if f.width > 900 else "half"}"><img src="{f.data_uri}" '
        f'width="{f.width}" height="{f.height}" alt="{esc(f.caption)}">'
        f"<figcaption>{esc(f.caption)}</figcaption></figure>"
        for f in figs
    )
    return f'<div class="figs">{items}</div>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p></header>'
        f"{''.join(body)}</main></body></html>\n"
    )
