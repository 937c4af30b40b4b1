"""Checks a page's DOM, as a browser built it, against a job's history read without Kask.

    python3 tests/report/dom.py DOM HISTORY OUTCOME [--live] [--png FILE WIDTHxHEIGHT]

The DOM must hold one bar per attempt record in HISTORY/attempts, one box per stage planned in
HISTORY/job.json, and the outcome OUTCOME; with --live, a view that the page's script swapped
in (the dashboard); with --png, a screenshot of that size. Prints one line; exit status 1 when
something is wrong.
"""
import argparse
import json
import os
import struct
import sys
from html.parser import HTMLParser


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.bars, self.boxes, self.outcome, self.updates = 0, [], None, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "rect" and "attempt" in classes:
            self.bars += 1
        if tag == "g" and "stage" in classes:
            self.boxes.append(a.get("data-stage"))
        if a.get("id") == "outcome":
            self.outcome = a.get("data-outcome")
        if a.get("id") == "view":
            self.updates = int(a.get("data-updates") or 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dom")
    p.add_argument("history")
    p.add_argument("outcome")
    p.add_argument("--live", action="store_true")
    p.add_argument("--png", nargs=2, metavar=("FILE", "SIZE"))
    args = p.parse_args()

    page = Page()
    with open(args.dom, encoding="utf-8") as f:
        page.feed(f.read())
    attempts_dir = os.path.join(args.history, "attempts")
    attempts = len([n for n in os.listdir(attempts_dir) if n.endswith(".json")]) \
        if os.path.isdir(attempts_dir) else 0
    with open(os.path.join(args.history, "job.json"), encoding="utf-8") as f:
        stages = [s["name"] for s in json.load(f)["stages"]]

    problems = []
    if attempts == 0:
        problems.append("the history holds no attempt")
    if page.bars != attempts:
        problems.append(f"{page.bars} bars for {attempts} attempts in the history")
    if sorted(page.boxes) != sorted(stages):
        problems.append(f"stage boxes {page.boxes}, planned stages {stages}")
    if page.outcome != args.outcome:
        problems.append(f"outcome {page.outcome!r}, not {args.outcome!r}")
    if args.live and not page.updates:
        problems.append("the page's script never swapped in a view")
    if args.png:
        png, size = args.png
        with open(png, "rb") as f:
            head = f.read(24)
        if head[:8] != b"\x89PNG\r\n\x1a\n":
            problems.append("the screenshot is not a PNG")
        elif "%dx%d" % struct.unpack(">II", head[16:24]) != size:
            problems.append("screenshot %dx%d, not %s" % (*struct.unpack(">II", head[16:24]), size))
    if problems:
        print("FAIL " + "; ".join(problems))
        sys.exit(1)
    live = f" ({page.updates} view updates)" if args.live else ""
    print(f"ok: {page.bars} bars for {attempts} attempts, boxes for {stages}, "
          f"outcome {page.outcome}{live}")


if __name__ == "__main__":
    main()
