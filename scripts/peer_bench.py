#!/usr/bin/env python3
"""Sparrow's `sparrow bench` side by side with llama.cpp on the same GGUF files.

For each model and each repetition, runs once, in an order that rotates every repetition:
  - Sparrow: `.build/release/sparrow bench -m MODEL -p P -n N -r 1 -t T --json`
    (a release build must exist: `swift build -c release --product sparrow`);
  - llama.cpp from the xllamacpp wheel (no llama-bench in it, so through its embedded
    llama-server, loaded once per model, same threads, context P + N, f32 KV cache):
    pp = a P-token prompt of random ids, n_predict 1, cache_prompt false -> prompt_per_second;
    tg = a one-token prompt, n_predict N, ignore_eos -> predicted_per_second (its timing
    includes the server's greedy sampling);
  - optionally a natively built llama-bench (--llama-bench PATH), run as
    `PATH -m MODEL -p P -n N -r 1 -t T -o json`.
Then prints, per model and test, the median t/s of each engine, Sparrow's ratio to each, and
Sparrow's median fraction of its measured decode roofline. Dev-time only.

  python3 scripts/peer_bench.py -m smollm2-135m -m qwen2.5-coder-0.5b --reps 5 \
      [--llama-bench /tmp/llama-native/build/bin/llama-bench] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import xllamacpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_goldens import LlamaServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPARROW = REPO / ".build" / "release" / "sparrow"
SPARROW_NAME = "sparrow"
SERVER_NAME = f"xllamacpp {xllamacpp.__version__}"
BENCH_NAME = "llama-bench (native)"


def model_path(model: str) -> str:
    """A GGUF path as given, or a catalog name resolved by Sparrow's model store."""
    if Path(model).is_file():
        return str(Path(model).resolve())
    result = subprocess.run([SPARROW, "models", "path", model], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"cannot resolve model {model}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def run_json(command: list[str]) -> list[dict]:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def test_name(record: dict) -> str:
    return f"pp{record['n_prompt']}" if record["n_prompt"] > 0 else f"tg{record['n_gen']}"


class ServerPeer:
    """llama.cpp through xllamacpp's llama-server, measured as llama-bench would."""

    def __init__(self, path: str, args: argparse.Namespace):
        self.args = args
        self.server = LlamaServer(Path(path), n_ctx=args.n_prompt + args.n_gen, n_threads=args.threads)
        vocab = self.server.get("/v1/models")["data"][0]["meta"]["n_vocab"]
        with_bos = self.server.tokenize("a", True, False)
        first = with_bos[:1] if len(with_bos) == len(self.server.tokenize("a", False, False)) + 1 else []
        rng = random.Random(0x5EED)
        # Random ids as llama-bench's, the first BOS where the model adds one.
        self.prompt = (first + [rng.randrange(vocab) for _ in range(args.n_prompt)])[: args.n_prompt]
        self.start = first or [rng.randrange(vocab)]
        self.run(warm_up=True)

    def _complete(self, prompt: list[int], n_predict: int) -> dict:
        reply = self.server.post("/completion", {
            "prompt": prompt, "n_predict": n_predict, "cache_prompt": False, "ignore_eos": True,
            "temperature": 0.0, "top_k": 1,
        })
        return reply["timings"]

    def run(self, warm_up: bool = False) -> dict[str, float]:
        speeds = {}
        if self.args.n_prompt > 0:
            timings = self._complete(self.prompt, 1)
            assert timings["prompt_n"] == self.args.n_prompt, timings
            speeds[f"pp{self.args.n_prompt}"] = timings["prompt_per_second"]
        if self.args.n_gen > 0:
            timings = self._complete(self.start, 1 if warm_up else self.args.n_gen)
            speeds[f"tg{self.args.n_gen}"] = timings["predicted_per_second"]
        return speeds

    def close(self) -> None:
        self.server.close()


def bench_model(model: str, args: argparse.Namespace) -> dict:
    path = model_path(model)
    samples: dict[str, dict[str, list[float]]] = {}
    fractions: list[float] = []
    bandwidths: list[float] = []

    def add(engine: str, speeds: dict[str, float]) -> None:
        for test, speed in speeds.items():
            samples.setdefault(test, {}).setdefault(engine, []).append(speed)

    def sparrow() -> None:
        records = run_json([str(SPARROW), "bench", "-m", path, "-p", str(args.n_prompt), "-n", str(args.n_gen),
                            "-r", "1", "-t", str(args.threads), "--json"])
        add(SPARROW_NAME, {test_name(r): r["median_ts"] for r in records})
        fractions.extend(r["tg_fraction_of_ceiling"] for r in records if "tg_fraction_of_ceiling" in r)
        bandwidths.append(records[0]["bandwidth_gbs"])

    def llama_bench() -> None:
        records = run_json([args.llama_bench, "-m", path, "-p", str(args.n_prompt), "-n", str(args.n_gen),
                            "-r", "1", "-t", str(args.threads), "-o", "json"])
        add(BENCH_NAME, {test_name(r): r["avg_ts"] for r in records})

    peer = ServerPeer(path, args)
    engines = [sparrow, lambda: add(SERVER_NAME, peer.run())]
    if args.llama_bench:
        engines.append(llama_bench)
    try:
        for rep in range(args.reps):
            shift = rep % len(engines)
            for engine in engines[shift:] + engines[:shift]:
                engine()
            print(f"{model}: repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        peer.close()

    tests = {}
    for test, by_engine in samples.items():
        medians = {engine: statistics.median(values) for engine, values in by_engine.items()}
        entry = {"samples_ts": by_engine, "median_ts": medians,
                 "sparrow_ratio": {e: medians[SPARROW_NAME] / m for e, m in medians.items() if e != SPARROW_NAME}}
        if test.startswith("tg") and fractions:
            entry["sparrow_fraction_of_ceiling"] = statistics.median(fractions)
        tests[test] = entry
    return {"model": model, "path": path, "threads": args.threads, "reps": args.reps,
            "sparrow_bandwidth_gbs": statistics.median(bandwidths), "tests": tests}


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    peers = [SERVER_NAME] + ([BENCH_NAME] if args.llama_bench else [])
    header = ["model", "test", "Sparrow t/s"]
    for peer in peers:
        header += [f"{peer} t/s", f"Sparrow / {peer.split()[0]}"]
    header.append("Sparrow's fraction of the tg ceiling")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for test, entry in result["tests"].items():
            cells = [result["model"], test, f"{entry['median_ts'][SPARROW_NAME]:.2f}"]
            for peer in peers:
                cells += [f"{entry['median_ts'][peer]:.2f}", f"{entry['sparrow_ratio'][peer]:.2f}x"]
            fraction = entry.get("sparrow_fraction_of_ceiling")
            cells.append(f"{fraction:.1%}" if fraction is not None else "")
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{r['model']}: Sparrow measured {r['sparrow_bandwidth_gbs']:.1f} GB/s" for r in results]
    lines += ["", f"Medians of {args.reps} alternating repetitions, {args.threads} threads; "
              + "memory bandwidth (median): " + "; ".join(notes) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", help="catalog name or GGUF path (repeatable; default smollm2-135m)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--llama-bench", metavar="PATH", help="a natively built llama-bench binary to compare too")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if args.n_prompt < 0 or args.n_gen < 0 or args.n_prompt + args.n_gen == 0:
        ap.error("-p and -n must be 0 or more, and not both 0")
    if args.reps < 1 or args.threads < 1:
        ap.error("--reps and --threads must be at least 1")
    if not SPARROW.is_file():
        ap.error(f"{SPARROW} is missing: run `swift build -c release --product sparrow`")
    if args.llama_bench and not Path(args.llama_bench).is_file():
        ap.error(f"--llama-bench {args.llama_bench}: no such file")

    results = [bench_model(model, args) for model in args.model or ["smollm2-135m"]]
    print(json.dumps(results, indent=2) if args.json else markdown(results, args))


if __name__ == "__main__":
    main()
