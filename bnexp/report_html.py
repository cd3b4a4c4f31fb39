"""The report as one self-contained HTML page (``bnexp report ... --out
page.html``): the same sections as the Markdown page (``report.gather``),
with every figure inline as SVG, a table of contents, and nothing fetched
from the network, so the page reads offline and when mailed.

Text written in a config's report section (claim, notes) and ``--intro``
may use the small part of Markdown that EXPERIMENTS.md uses: headings,
paragraphs, bullet lists, tables, ``code``, **bold**, *emphasis* and
[links](target). It is escaped, then those marks are turned into tags.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .claims import ClaimResult, fmt_interval
from .figures import figure_bytes

# The sections are ``report.Parts``; their figures come from ``report.draw``, which
# the caller passes in (report imports this module, not the other way round).

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 62rem;
       padding: 1rem 2rem 4rem; color: #1d1d1f; }
h1, h2, h3 { line-height: 1.2; } h2 { margin-top: 3rem; border-top: 1px solid #ddd;
                                      padding-top: 1.5rem; }
nav { background: #f5f5f7; padding: .5rem 1.5rem; border-radius: 6px; }
nav h2 { border: 0; margin-top: .5rem; padding-top: 0; }
nav li { margin: .2rem 0; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f5f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; }
.outcome { font-weight: 600; white-space: nowrap; }
.holds { color: #1a7f37; } .does-not-hold { color: #cf222e; }
.inconclusive { color: #9a6700; }
figure { margin: 1.5rem 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 14px; color: #555; }
code { background: #f5f5f7; padding: 0 .2rem; border-radius: 3px; font-size: 90%; }
.note { color: #555; }
"""


def _inline(text: str) -> str:
    """Escaped text with `code`, **bold**, *emphasis* and [links](url) as tags."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        t = html.escape(part, quote=False)
        t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
        t = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", t)
        t = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                   lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', t)
        out.append(t)
    return "".join(out)


def _table(head: list[str], rows: list[list[str]], numeric_from: int | None = None) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned."""
    def cell(i: int, v: str) -> str:
        num = numeric_from is not None and i >= numeric_from
        attr = ' class="num"' if num else ""
        return f"<td{attr}>{_inline(v)}</td>"

    th = "".join(f"<th>{_inline(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def blocks(text: str) -> str:
    """Markdown text (headings, paragraphs, bullet lists, tables) as HTML."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if all(line.lstrip().startswith("|") for line in lines) and len(lines) >= 2:
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
            rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            out.append(_table(rows[0], rows[1:]))
        elif m := re.match(r"(#{1,6})\s+(.*)", lines[0]):
            level = min(len(m.group(1)) + 1, 6)  # the page's own title is the h1
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            if lines[1:]:
                out.append(blocks("\n".join(lines[1:])))
        elif all(re.match(r"\s*[-*] ", line) or line.startswith("  ") for line in lines):
            items, current = [], []
            for line in lines:
                if re.match(r"\s*[-*] ", line) and current:
                    items.append(" ".join(current))
                    current = []
                current.append(re.sub(r"^\s*[-*] ", "", line).strip())
            items.append(" ".join(current))
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(out)


def _slug(outcome: str) -> str:
    return outcome.replace(" ", "-")


def _checks(result: ClaimResult) -> str:
    rows = []
    for c in result.checks:
        rows.append(f"<tr><td>{_inline(c.text)}</td><td>{html.escape(c.statistic)}</td>"
                    f'<td class="num">{html.escape(fmt_interval(c.interval))}</td>'
                    f"<td>{html.escape(c.criterion)}</td>"
                    f'<td class="outcome {_slug(c.outcome)}">{html.escape(c.shown)}</td></tr>')
    return (f'<p class="verdict">Verdict: <span class="outcome {_slug(result.verdict)}">'
            f"{html.escape(result.verdict)}</span> ({result.tally})</p>"
            '<p class="note">Computed from the runs: a check holds when its whole 95% interval '
            "over seeds meets the criterion, and does not hold when the whole interval misses "
            "it.</p><table class=\"checks\"><thead><tr><th>check</th><th>statistic</th>"
            "<th>measured [95% interval]</th><th>criterion</th><th>result</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def inline_svg(svg: bytes, prefix: str) -> str:
    """A matplotlib SVG as an element of a page that holds several: the XML
    prolog dropped and every id (and reference to one) given ``prefix``."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', text)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", text)


def anchors(parts: list) -> list[str]:
    """Each section's id: its sweep's folder name, numbered where two share one."""
    seen: dict[str, int] = {}
    out = []
    for p in parts:
        seen[p.name] = seen.get(p.name, 0) + 1
        out.append(p.name if seen[p.name] == 1 else f"{p.name}-{seen[p.name]}")
    return out


def section_html(p, index: int, anchor: str, draw) -> str:
    """One sweep's section (``report.Parts``): the Markdown page's content, its
    figures (``draw(p, i)``: a matplotlib Figure) inline."""
    out = [f'<section id="{html.escape(anchor)}">', f"<h2>{_inline(p.title)}</h2>"]
    for label, text in (("Claim", p.claim), ("Source", p.source)):
        if text:
            out.append(f"<p><strong>{label}.</strong> {_inline(text)}</p>")
    if p.incomplete:
        out.append(f"<p><strong>Incomplete.</strong> {html.escape(p.incomplete)}</p>")
    if p.result is not None:
        out.append(_checks(p.result))
        if p.result.notes:
            out.append("<p><strong>Interpretation</strong> (written by hand; its numbers are "
                       f"filled in from the runs). {_inline(p.result.notes.strip())}</p>")
    out.append(f"<p><strong>Command.</strong> <code>{html.escape(p.command)}</code> "
               f"{_inline(p.runs_note)}</p>")
    if p.made_by:
        out.append(f"<p><strong>Made by</strong> {html.escape(p.made_by)}.</p>")
    for i, spec in enumerate(p.figures):
        svg = figure_bytes(draw(p, i), "svg")  # closes the figure
        caption = f"{p.name}: {spec.get('kind') or 'default figure'}"
        out.append(f'<figure class="figure">{inline_svg(svg, f"s{index}f{i}-")}'
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("<p>Every grid point, mean [95% interval] over its seeds (n finished runs), "
               f"from the run folders of <code>{html.escape(p.name)}</code>:</p>")
    out.append(_table(p.head, p.rows, numeric_from=p.n_keys))
    out.append("</section>")
    return "\n".join(out)


def page(parts: list, title: str | None, intro: str | None, draw) -> str:
    """The whole page: title, table of contents, intro, one section per sweep."""
    heading = title or (parts[0].title if len(parts) == 1 else "bnexp report")
    ids = anchors(parts)
    toc = "".join(f'<li><a href="#{html.escape(a)}">{_inline(p.title)}</a>'
                  + (f' <span class="outcome {_slug(p.result.verdict)}">'
                     f"{html.escape(p.result.verdict)}</span>" if p.result else "") + "</li>"
                  for p, a in zip(parts, ids))
    body = [f"<h1>{_inline(heading)}</h1>",
            f'<nav id="contents"><h2>Contents</h2><ol>{toc}</ol></nav>']
    if intro:
        body.append(f'<div class="intro">{blocks(intro)}</div>')
    body += [section_html(p, i, a, draw) for i, (p, a) in enumerate(zip(parts, ids))]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(heading)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_html(parts: list, out: Path, title: str | None, intro: str | None, draw) -> Path:
    from .store import atomic_write

    atomic_write(out, page(parts, title, intro, draw))
    return out
