"""Draws the worker benchmark's throughput rows as an SVG bar chart.

  /usr/bin/python3 scripts/bench/chart.py bench-results/10-worker.md docs/bench-worker.svg

Reads the Markdown table 10-worker.sh prints and plots every tasks/s drain
row (a)–(d) against the bare-consumer ceiling.
"""
import re
import sys
from xml.sax.saxutils import escape


def rows(path):
    out = []
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.match(r"\((a|b|c|c'|d)\)", cells[0]) and cells[1] == "tasks/s":
            out.append((cells[0], float(cells[2])))
    return out


def svg(data):
    width, bar_h, gap, left = 760, 26, 12, 360
    top = 40
    height = top + len(data) * (bar_h + gap) + 20
    peak = max(v for _, v in data)
    ceiling = data[0][1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">Draining no-op tasks from RabbitMQ (tasks/s, higher is better)</text>',
    ]
    for i, (label, v) in enumerate(data):
        y = top + i * (bar_h + gap)
        w = (width - left - 90) * v / peak
        colour = "#888" if i == 0 else ("#c0504d" if "Celery" in label else "#2e7d32")
        parts.append(f'<text x="10" y="{y + bar_h * 0.7}">{escape(label[:52])}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + bar_h * 0.7}">{v:,.0f} ({v / ceiling:.2f}×)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    data = rows(sys.argv[1])
    if not data:
        sys.exit("no tasks/s rows in " + sys.argv[1])
    open(sys.argv[2], "w", encoding="utf-8").write(svg(data))
