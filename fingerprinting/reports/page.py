"""The shared page module: one offline HTML page shell for every dashboard.

A page is a header, a sticky nav and sections; each section holds a figure
(plotly, JS inlined once in the page head, never a CDN) or a filterable table,
and a one-line legend saying what it shows. Files are written to a temporary
name and renamed, so a reader never sees half a page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

CSS = """body{font-family:system-ui,sans-serif;margin:0;color:#222}header{background:#1f3b57;color:#fff;padding:12px 20px}
header h1{margin:0 0 4px;font-size:22px}nav{position:sticky;top:0;background:#eef2f6;padding:8px 20px;z-index:10}
nav a{margin-right:14px}section{padding:10px 20px}h2{font-size:18px;margin:14px 0 4px}
p.legend{color:#555;font-size:13px;margin:2px 0 12px;max-width:1100px}p.note{color:#8a5a00;font-size:13px;margin:4px 0}
p.missing{color:#888;font-style:italic}table.stats{border-collapse:collapse;font-size:13px;margin:6px 0 18px}
table.stats td,table.stats th{border:1px solid #ccd;padding:3px 8px;text-align:left;max-width:460px;overflow-wrap:anywhere}
table.stats td.n,table.stats th.n{text-align:right}table.stats th{background:#f4f6f9}
input.filter{display:block;width:320px;padding:4px;margin-top:6px}
div.tablewrap{max-height:560px;overflow:auto;width:fit-content;max-width:100%;margin:6px 0 18px}
div.tablewrap table.stats{margin:0}div.tablewrap th{position:sticky;top:0}"""

# Filter: a row stays visible when its text contains the box's text (case-insensitive).
FILTER_JS = """document.querySelectorAll('input.filter').forEach(function(inp){inp.addEventListener('input',function(){
var q=inp.value.toLowerCase();var rows=document.getElementById(inp.dataset.table).tBodies[0].rows;
for(var i=0;i<rows.length;i++){rows[i].style.display=rows[i].textContent.toLowerCase().indexOf(q)>=0?'':'none';}});});"""


def fmt(v, digits: int = 4) -> str:
    """One table cell's text: floats to ``digits`` decimals, lists comma-joined, None blank."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float | Decimal):
        return f"{v:.{digits}f}"
    if isinstance(v, list | tuple):
        return ", ".join(fmt(x, digits) for x in v)
    return str(v)


def table_html(rows: Sequence[dict], cols: Sequence[tuple[str, str]], table_id: str, *,
               placeholder: str = "filter rows (family, model, type)...", max_rows: int | None = None,
               digits: int = 4) -> str:
    """A filterable table: a text box above it hides the rows that do not contain its text.

    ``cols`` are (row key, column label). With ``max_rows`` only the first rows are
    written and a note says how many were left out.
    """
    shown = rows if max_rows is None else rows[:max_rows]

    def numeric(v) -> bool:
        return isinstance(v, int | float | Decimal) and not isinstance(v, bool)

    # a column of numbers is right-aligned, text left-aligned
    cls = {k: ' class="n"' if any(numeric(r.get(k)) for r in shown)
           and all(numeric(r.get(k)) or r.get(k) is None for r in shown) else "" for k, _ in cols}
    head = "".join(f"<th{cls[k]}>{html.escape(label)}</th>" for k, label in cols)
    body = "".join("<tr>" + "".join(f"<td{cls[k]}>{html.escape(fmt(r.get(k), digits))}</td>" for k, _ in cols)
                   + "</tr>" for r in shown)
    note = ""
    if len(shown) < len(rows):
        note = (f'<p class="note">showing the first {len(shown):,} of {len(rows):,} rows '
                f'(the filter searches these rows only)</p>')
    return (f'<input class="filter" data-table="{table_id}" placeholder="{html.escape(placeholder)}">{note}'
            f'<div class="tablewrap"><table id="{table_id}" class="stats"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def figure_div(fig, name: str) -> str:
    """A plotly figure as a ``<div id="fig-NAME">`` that uses the page's inlined plotly.js."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                       config={"displaylogo": False, "responsive": True})


def legend_html(text: str) -> str:
    return f'<p class="legend">{html.escape(text)}</p>' if text else ""


@dataclass
class Section:
    """One block of a page: an anchor id, an optional heading, its HTML body and a one-line legend."""

    id: str
    body: str
    legend: str = ""
    title: str = ""

    def html(self) -> str:
        head = f"<h2>{html.escape(self.title)}</h2>" if self.title else ""
        return f'<section id="{html.escape(self.id)}">{head}{self.body}{legend_html(self.legend)}</section>'


def figure_section(name: str, fig, legend: str, title: str = "") -> Section:
    return Section(name, figure_div(fig, name), legend, title)


def missing_section(name: str, title: str, what: str) -> Section:
    """The section that stands in for one whose source is absent (e.g. a mart not built yet)."""
    return Section(name, f'<p class="missing">{html.escape(what)}</p>', "", title)


def page_html(title: str, header_html: str, sections: Iterable[Section], nav: Sequence[tuple[str, str]] | None = None,
              ) -> str:
    """A whole self-contained page: plotly.js inlined once in the head, then the sections.

    ``header_html`` is trusted HTML (callers escape their values); ``nav`` is
    (anchor id, label) pairs, by default one per section.
    """
    from plotly.offline import get_plotlyjs

    sections = list(sections)
    nav = nav if nav is not None else [(s.id, s.id) for s in sections]
    links = " ".join(f'<a href="#{html.escape(i)}">{html.escape(label)}</a>' for i, label in nav)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<header>{header_html}</header><nav>{links}</nav>{''.join(s.html() for s in sections)}"
            f"<script>{FILTER_JS}</script></body></html>")


def write_text(path: str | Path, text: str) -> str:
    """Write ``text`` to a temporary sibling, then rename it over ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return str(p)


def drawn(build: Callable[[Any], Section | list[Section]], data: Any, sid: str, title: str) -> list[Section]:
    """The sections ``build(data)`` makes, or one saying why it could not (odd values in a mart must
    not cost the whole page)."""
    try:
        out = build(data)
    except Exception as e:  # noqa: BLE001 - reported on the page
        return [missing_section(sid, title, f"{title}: could not be drawn: {type(e).__name__}: {e}"[:400])]
    return out if isinstance(out, list) else [out]
