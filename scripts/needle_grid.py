#!/usr/bin/env python3
"""GemFilter against full attention and the two baselines on the same needle prompts.

Runs `sparrow eval needle --json` once per method and cell (each cell in its own process, so
its peak memory is its own), same model, haystack, lengths and depths, and prints one table: per method
and length, the hits over the depths, the median time to first token, the largest peak RSS, and
the ratios to full attention. Dev-time only; needs a release build
(`swift build -c release --product sparrow`).

  python3 scripts/needle_grid.py -m qwen2.5-coder-0.5b \\
      --haystack ../shared/data/austen/pride_and_prejudice.txt --lengths 8k,16k \\
      [--depths 0,25,50,75,100] [--keep 1024] [--json OUT] \\
      [--gemfilter-args "--gemfilter-attention-window 2048" --gemfilter-args ""]

Each --gemfilter-args is one GemFilter run with those extra flags (default: one plain run).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

SPARROW = Path(__file__).resolve().parent.parent / ".build" / "release" / "sparrow"


def needle_length(text: str) -> int:
    """"8k" -> 8192, as `sparrow eval needle --lengths` reads it."""
    return int(text[:-1]) * 1024 if text.lower().endswith("k") else int(text)


def run_cell(args: argparse.Namespace, method: list[str], length: str, depth: str) -> dict:
    command = [str(SPARROW), "eval", "needle", "-m", args.model, "--haystack", args.haystack,
               "--lengths", length, "--depths", depth, "--gemfilter-keep", str(args.keep),
               "--json", *method]
    print("$ " + shlex.join(command), file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--haystack", required=True)
    parser.add_argument("--lengths", default="8k,16k")
    parser.add_argument("--depths", default="0,25,50,75,100")
    parser.add_argument("--keep", type=int, default=1024)
    parser.add_argument("--gemfilter-args", action="append", help="extra flags for one GemFilter run (repeatable)")
    parser.add_argument("--skip-full", action="store_true", help="leave out full attention (no ratios)")
    parser.add_argument("--json", help="write every method's cells to this file, after each method; "
                        "methods already in it are not run again")
    parser.add_argument("--gemfilter-lengths", help="lengths for the GemFilter runs after the first (default: --lengths)")
    args = parser.parse_args()

    extras = args.gemfilter_args or [""]
    # Cheap methods first, full attention last: a failure late loses the least.
    methods = [(["--gemfilter", *shlex.split(extras[0])], args.lengths)]
    methods += [(["--baseline", "last"], args.lengths), (["--baseline", "sinks"], args.lengths)]
    methods += [(["--gemfilter", *shlex.split(extra)], args.gemfilter_lengths or args.lengths) for extra in extras[1:]]
    if not args.skip_full:
        methods.append(([], args.lengths))
    path = Path(args.json) if args.json else None
    reports = json.loads(path.read_text()) if path and path.exists() else {}
    for flags, lengths in methods:
        for length in lengths.split(","):
            for depth in args.depths.split(","):
                known = [r for r in reports.values() if r["flags"] == flags]
                cells = known[0]["cells"] if known else []
                if any(c["length"] == needle_length(length) and c["depth"] == int(depth) for c in cells):
                    continue
                try:
                    report = run_cell(args, flags, length, depth)
                except subprocess.CalledProcessError as error:
                    print(f"failed ({error.returncode}): {error.stderr.strip()}", file=sys.stderr, flush=True)
                    continue
                entry = reports.setdefault(report["method"], {"method": report["method"], "flags": flags, "cells": []})
                entry["cells"].append(report["cells"][0])
                if path:
                    path.write_text(json.dumps(reports, indent=1))

    full = reports.get("full attention")
    print()
    print(f"{args.model}, keep {args.keep}, depths {args.depths}; per length: hits, median time to first token, "
          "largest peak RSS (ratios to full attention)\n")
    print("| method | length | hits | needle tokens kept | TTFT median | vs full | peak RSS | vs full |")
    print("|---|---|---|---|---|---|---|---|")
    for name, report in reports.items():
        for length in sorted({c["length"] for c in report["cells"]}):
            cells = [c for c in report["cells"] if c["length"] == length]
            ttft = statistics.median(c["ttft_ms"] for c in cells) / 1000
            peak = max(c["peak_rss_bytes"] for c in cells) / 2**20
            kept = "" if cells[0].get("needle_kept") is None else \
                f'{sum(c["needle_kept"] for c in cells)}/{sum(c["needle_tokens"] for c in cells)}'
            speed = memory = ""
            reference = [c for c in full["cells"] if c["length"] == length] if full and report is not full else []
            if reference:
                speed = f'{statistics.median(c["ttft_ms"] for c in reference) / 1000 / ttft:.2f}x'
                memory = f'{peak / (max(c["peak_rss_bytes"] for c in reference) / 2**20):.2f}x'
            hits = sum(c["hit"] for c in cells)
            print(f"| {report['method']} | {length} | {hits}/{len(cells)} | {kept} | {ttft:.1f} s | {speed} | {peak:.0f} MiB | {memory} |")


if __name__ == "__main__":
    main()
