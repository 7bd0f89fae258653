#!/usr/bin/env python3
"""Renders `moeq plan --html` in headless Chromium and checks the page carries the terminal's information.

Usage: check_html.py PATH/TO/moeq [--chromium chromium] [--out /tmp/moeq-plan-html]

For a bundled model and several kinds of target (GPU + RAM, two GPUs, unified memory, dual-socket CPU) it runs
`moeq plan … --html F`, the same command as text, and with --json, then:
  * has Chromium render the page (--dump-dom: the DOM after layout) and write a screenshot (PNG under --out);
  * checks the DOM's #matrix table holds every cell of the terminal table, row for row, and #lines every line under it;
  * checks the #commands table has one row per recipe × target with the JSON's command and verdict;
  * checks the SVG has one marker per recipe × target and a legend entry per target.
Needs only the standard library and a chromium binary (`apt-get install chromium`). Exit status 1 on any failure.
"""
import argparse
import html.parser
import json
import os
import re
import subprocess
import sys

MODEL = "kimi-k2.5"
TARGETS = ["rtx4090+256gb", "2x3090+128gb-ddr4", "m3-ultra-512gb", "1000gb-2x8ch-ddr5-4800"]
RECIPES = ["Q4_K_M", "INT4-NATIVE", "IQ3_XXS", "IQ2_XXS", "IQ1_S"]


class Page(html.parser.HTMLParser):
    """Collects table rows by table id, list items by list id, and SVG markers."""

    def __init__(self):
        super().__init__()
        self.tables, self.lists, self.markers, self.legend = {}, {}, 0, 0
        self.stack, self.row, self.cell, self.item = [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("table", "ul"):
            self.stack.append((tag, a.get("id")))
            (self.tables if tag == "table" else self.lists).setdefault(a.get("id"), [])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "li":
            self.item = ""
        elif tag in ("circle", "path") and "point" in (a.get("class") or ""):
            self.markers += 1
        elif tag == "rect" and a.get("width") == "12" and a.get("height") == "10":
            self.legend += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None and self.stack:
            self.tables[self.stack[-1][1]].append(self.row)
            self.row = None
        elif tag == "li" and self.item is not None and self.stack:
            self.lists[self.stack[-1][1]].append(self.item)
            self.item = None
        elif tag in ("table", "ul") and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.item is not None:
            self.item += data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("moeq")
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--out", default="/tmp/moeq-plan-html")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    page_path = os.path.join(args.out, "plan.html")
    shot = os.path.join(args.out, "plan.png")
    for stale in (page_path, shot):
        if os.path.exists(stale):
            os.remove(stale)
    base = [args.moeq, "plan", MODEL] + sum((["--target", t] for t in TARGETS), []) + sum((["--recipe", r] for r in RECIPES), [])
    text = subprocess.run(base + ["--html", page_path], capture_output=True, text=True, check=True).stdout
    document = json.loads(subprocess.run(base + ["--json"], capture_output=True, text=True, check=True).stdout)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=2000"]
    url = "file://" + os.path.abspath(page_path)
    dom = subprocess.run([args.chromium] + flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    subprocess.run([args.chromium] + flags + ["--window-size=1400,2200", f"--screenshot={shot}", url],
                   capture_output=True, text=True, timeout=120)
    failures = []

    def check(condition, what):
        if not condition:
            failures.append(what)

    check(dom.returncode == 0 and "<svg" in dom.stdout, f"chromium --dump-dom failed: {dom.stderr[-400:]}")
    page = Page()
    page.feed(dom.stdout)
    # The terminal table: a title line, one line per recipe; columns are two or more spaces apart.
    lines = text.rstrip("\n").split("\n")
    rows = [re.split(r" {2,}", line.strip()) for line in lines[: len(RECIPES) + 1]]
    matrix = page.tables.get("matrix", [])
    check(len(matrix) == len(rows), f"#matrix has {len(matrix)} rows, the terminal table {len(rows)}")
    for terminal, rendered in zip(rows, matrix):
        check([c.strip() for c in rendered] == terminal, f"row differs: terminal {terminal}, page {rendered}")
    rest = [line for line in lines[len(RECIPES) + 1:]]
    check(page.lists.get("lines") == rest, f"#lines differ from the terminal's lines:\n{page.lists.get('lines')}\n{rest}")
    commands = page.tables.get("commands", [])[1:]
    check(len(commands) == len(RECIPES) * len(TARGETS), f"#commands has {len(commands)} rows")
    for plan, row in zip(document["plans"], commands):
        check(row[0] == plan["recipe"] and row[1] == plan["target"] and row[2] == plan["verdict"]
              and row[5] == plan["llama_cpp"], f"command row {row} differs from the JSON plan {plan['recipe']} / {plan['target']}")
    check(page.markers == len(RECIPES) * len(TARGETS), f"{page.markers} chart markers, expected {len(RECIPES) * len(TARGETS)}")
    check(page.legend == len(TARGETS), f"{page.legend} legend entries, expected {len(TARGETS)}")
    check(os.path.exists(shot) and os.path.getsize(shot) > 20_000, f"no screenshot at {shot}")
    if os.path.exists(shot):
        with open(shot, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
    for failure in failures:
        print("FAIL", failure)
    print(f"{'FAILED' if failures else 'OK'}: {len(matrix)} table rows, {len(commands)} commands, {page.markers} markers; "
          f"screenshot {shot}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
