#!/usr/bin/env python3
"""What continuous batching buys `sparrow serve`: N concurrent greedy completions of a fixed length,
served with --parallel N (their decode steps run as one batch) against --parallel 1 (one at a
time), the two alternating for --reps repetitions. Prints each run's aggregate generated tokens
per second, the medians and their ratio. Dev-time only; needs a release build.

  python3 scripts/serve_batching_bench.py -m qwen2.5-coder-0.5b [--streams 4] [--tokens 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from openai_client_check import SparrowServer


def complete(base_url: str, prompt: str, tokens: int) -> int:
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0}).encode()
    request = urllib.request.Request(base_url + "/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)["usage"]["completion_tokens"]


def run(model: str, parallel: int, streams: int, tokens: int) -> float:
    """Aggregate tokens per second of `streams` concurrent completions on a fresh server."""
    with SparrowServer(model=model, extra_args=["--parallel", str(parallel), "--ctx-size", str(tokens + 64)]) as server:
        complete(server.base_url, "1, 2, 3,", 8)  # warm-up
        # Counting from different numbers: greedy goes on for the whole length without an end token.
        prompts = [", ".join(str(k) for k in range(i, i + 4)) + "," for i in range(1, streams + 1)]
        start = time.monotonic()
        with ThreadPoolExecutor(streams) as pool:
            generated = sum(pool.map(lambda p: complete(server.base_url, p, tokens), prompts))
        return generated / (time.monotonic() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    speeds: dict[int, list[float]] = {args.streams: [], 1: []}
    for rep in range(args.reps):
        for parallel in (args.streams, 1):
            speeds[parallel].append(run(args.model, parallel, args.streams, args.tokens))
            print(f"rep {rep + 1}: --parallel {parallel}: {speeds[parallel][-1]:.1f} tok/s", flush=True)
    batched, serial = statistics.median(speeds[args.streams]), statistics.median(speeds[1])
    print(f"{args.model}, {args.streams} concurrent completions of {args.tokens} tokens: "
          f"--parallel {args.streams} {batched:.1f} tok/s, --parallel 1 {serial:.1f} tok/s (medians), {batched / serial:.2f}x")


if __name__ == "__main__":
    main()
