#!/usr/bin/env python3
"""Replaces (or appends) one `## ` section of BENCHMARKS.md, used by every benchmark script.
Usage: section.py 'HEADING PREFIX' < new-section.md   (run from the repository root)
The section runs from its `## HEADING PREFIX` line to the next `## ` heading."""
import re, sys

prefix, new = sys.argv[1], sys.stdin.read().strip() + "\n"
try:
    text = open("BENCHMARKS.md").read()
except FileNotFoundError:
    text = ""
if not text.startswith("# Benchmarks"):
    text = "# Benchmarks\n\nEvery capability's figures, with method and machine. Rewritten by the scripts named in each section.\n\n" + text
pat = re.compile(r"## " + re.escape(prefix) + r".*?(?=\n## |\Z)", re.S)
text = pat.sub(lambda _: new, text) if pat.search(text) else text.rstrip() + "\n\n" + new
open("BENCHMARKS.md", "w").write(text)
