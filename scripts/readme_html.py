"""README.md -> a self-contained HTML page (the plugin's help page, built by package_plugin.py).

Handles what the README uses: headings (with GitHub's anchors, so an algorithm's help URL
``help/index.html#predict-gap-masks-infer`` lands on its section), paragraphs, bullet lists,
tables, fenced code blocks, and inline code, bold and links. Standard library only.
Usage: ``python scripts/readme_html.py README.md OUT.html``.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em;line-height:1.45}"
    "code,pre{background:#f4f4f4}pre{padding:.6em;overflow-x:auto}"
    "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .5em}"
)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def inline(text: str) -> str:
    """Inline markdown of one line (escaped)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", part)
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', part)
        out.append(part)
    return "".join(out)


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head, body = cells[0], [r for r in cells[2:]]
    th = "".join(f"<th>{inline(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _flush(paragraph: list[str], items: list[str], out: list[str]) -> None:
    if paragraph:
        out.append(f"<p>{inline(' '.join(paragraph))}</p>")
        paragraph.clear()
    if items:
        out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
        items.clear()


def to_html(markdown: str, title: str = "Canopy gaps") -> str:
    """The HTML page of ``markdown``."""
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            _flush(paragraph, items, out)
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines)
            )
            out.append(f"<pre>{html.escape(chr(10).join(lines[i + 1 : end]))}</pre>")
            i = end + 1
            continue
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        if heading:
            _flush(paragraph, items, out)
            level, text = len(heading.group(1)), heading.group(2)
            out.append(f'<h{level} id="{slug(text)}">{inline(text)}</h{level}>')
        elif line.startswith("|"):
            _flush(paragraph, items, out)
            end = next(
                (j for j in range(i, len(lines)) if not lines[j].startswith("|")), len(lines)
            )
            out.append(_table(lines[i:end]))
            i = end
            continue
        elif re.match(r"^\s*[-*] ", line):
            if paragraph:
                _flush(paragraph, [], out)
            items.append(re.sub(r"^\s*[-*] ", "", line))
        elif not line.strip():
            _flush(paragraph, items, out)
        elif items:
            items[-1] += " " + line.strip()
        else:
            paragraph.append(line.strip())
        i += 1
    _flush(paragraph, items, out)
    body = "\n".join(out)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source, target = Path(args[0]), Path(args[1])
    target.write_text(to_html(source.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
