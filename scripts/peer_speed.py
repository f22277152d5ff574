#!/usr/bin/env python3
"""Prefill and decode speed of Sparrow vs llama.cpp (the xllamacpp wheel) on the same GGUF.

Runs both on the same prompt token ids, alternating them for --reps repetitions, and prints
the median tokens/s of each and their ratio. Dev-time only.

  python3 scripts/peer_speed.py -m smollm2-135m [--prompt-tokens 128] [--gen 64] [--reps 5]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import xllamacpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_goldens import LlamaServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPARROW = REPO / ".build" / "release" / "sparrow"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default="smollm2-135m")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    path = subprocess.run([SPARROW, "models", "path", args.model], check=True,
                          capture_output=True, text=True).stdout.strip()
    text = Path("/work/shared/data/austen/pride_and_prejudice.txt").read_text()[:20000]
    server = LlamaServer(Path(path))
    ids = server.tokenize(text, add_special=True, parse_special=False)[: args.prompt_tokens]
    prompt = server.detokenize(ids)

    results = {"sparrow": {"pp": [], "tg": []}, "llama.cpp": {"pp": [], "tg": []}}
    for _ in range(args.reps):
        out = subprocess.run([SPARROW, "generate", "-m", path, "-p", prompt, "-n", str(args.gen),
                              "--json"], check=True, capture_output=True, text=True)
        t = json.loads(out.stdout)["timings"]
        results["sparrow"]["pp"].append(t["prompt_per_second"])
        results["sparrow"]["tg"].append(t["predicted_per_second"])
        reply = server.post("/completion", {"prompt": prompt, "n_predict": args.gen, "temperature": 0,
                                            "top_k": 1, "cache_prompt": False, "ignore_eos": True})
        t = reply["timings"]
        results["llama.cpp"]["pp"].append(t["prompt_per_second"])
        results["llama.cpp"]["tg"].append(t["predicted_per_second"])
    server.close()

    print(f"model {args.model}, prompt {args.prompt_tokens} tokens, {args.gen} generated, {args.reps} reps, xllamacpp {xllamacpp.__version__ if hasattr(xllamacpp, '__version__') else ''}")
    print("| engine | prefill tok/s (median) | decode tok/s (median) |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {statistics.median(r['pp']):.1f} | {statistics.median(r['tg']):.1f} |")
    s, l = results["sparrow"], results["llama.cpp"]
    print(f"| ratio | {statistics.median(s['pp']) / statistics.median(l['pp']):.2f}x | "
          f"{statistics.median(s['tg']) / statistics.median(l['tg']):.2f}x |")


if __name__ == "__main__":
    main()
