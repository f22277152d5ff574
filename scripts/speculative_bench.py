#!/usr/bin/env python3
"""Speculative decoding against plain decoding, per task and draft source, with llama.cpp's
own speculative modes beside it.

Tasks (real text, greedy, chat template):
  code-edit        rewrite a Swift file of this repository with one renaming (copy-heavy)
  quote            copy a paragraph of Pride and Prejudice word for word (copy-heavy)
  code-completion  write a small Python module from a description (nothing to copy)

Per task and draft source (prompt lookup, and a draft model), each repetition is one
`sparrow generate --json --compare` process: it decodes the prompt plainly, then
speculatively, so both speeds come from the same run; the table shows medians over the
repetitions of the speed-up and of both speeds, the acceptance, and whether the speculative
tokens equal the plain ones (they must, with greedy decoding).

With --peer, llama.cpp (the xllamacpp wheel's embedded llama-server, same threads, f32 cache)
decodes the same prompt token ids plainly, with its draft-model mode and with its n-gram
lookup mode, each in its own server, in rotating order per repetition. Dev-time only; needs a
release build (`swift build -c release --product sparrow`).

  python3 scripts/speculative_bench.py -m qwen2.5-coder-1.5b --draft-model qwen2.5-coder-0.5b \\
      [--reps 3] [--draft-max 7] [--peer] [--json docs/results/speculative-qwen2.5-coder-1.5b.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPARROW = REPO / ".build" / "release" / "sparrow"
AUSTEN = REPO.parent / "shared" / "data" / "austen" / "pride_and_prejudice.txt"


def tasks() -> dict[str, tuple[str, int]]:
    """Task name -> (chat message, tokens to generate)."""
    code = (REPO / "Sources" / "SparrowEngine" / "Methods" / "PromptLookupDraft.swift").read_text()
    # Gutenberg's hard line breaks unwrapped: models copy prose as running text.
    paragraphs = [" ".join(p.split()) for p in AUSTEN.read_text().split("\n\n") if len(p.strip()) > 300]
    passage = "\n\n".join(paragraphs[40:43])
    return {
        "code-edit": ("Rewrite the following Swift code with one change: rename the variable `history` to `tokens` "
                      "everywhere. Reply with the complete code only.\n\n```swift\n" + code + "```", 512),
        "quote": (passage + "\n\nRepeat the text above exactly, word for word.", 256),
        "code-completion": ("Write a Python module that parses a CSV file of transactions (date, description, amount), "
                            "groups them by month, and prints a table of monthly totals. Include type hints and "
                            "docstrings.", 256),
    }


def sparrow(model: str, message: str, tokens: int, source: list[str]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as prompt:
        prompt.write(message)
        prompt.flush()
        command = [str(SPARROW), "generate", "-m", model, "-f", prompt.name, "--chat", "-n", str(tokens), "-t", "2",
                   "--json", "--compare", *source]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def model_path(model: str) -> str:
    result = subprocess.run([str(SPARROW), "models", "path", model], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"cannot resolve model {model}: {result.stderr.strip()}")
    return result.stdout.strip()


def peer_servers(target: str, draft: str, draft_max: int, min_p: float, ngram: int):
    """llama.cpp servers: plain, draft model, n-gram lookup (name -> LlamaServer factory)."""
    import xllamacpp

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_goldens import LlamaServer

    kinds = xllamacpp.common_speculative_type

    def with_draft(params):
        params.speculative.types = [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        d = params.speculative.draft
        d.mparams.path = draft
        d.n_max = draft_max
        d.p_min = min_p
        d.cpuparams.n_threads = 2
        d.cpuparams_batch.n_threads = 2
        d.n_gpu_layers = 0

    def with_lookup(params):
        params.speculative.types = [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
        params.speculative.ngram_simple.size_n = ngram
        params.speculative.ngram_simple.size_m = draft_max

    return {name: (lambda configure=configure: LlamaServer(Path(target), n_ctx=4096, configure=configure))
            for name, configure in [("plain", None), ("draft model", with_draft), ("lookup", with_lookup)]}


def peer_decode(server, prompt_ids: list[int], tokens: int) -> dict:
    reply = server.post("/completion", {"prompt": prompt_ids, "n_predict": tokens, "temperature": 0.0, "top_k": 1,
                                        "cache_prompt": False, "return_tokens": True})
    t = reply["timings"]
    return {"predicted_per_second": t["predicted_per_second"], "predicted_n": t["predicted_n"],
            "draft_n": t.get("draft_n", 0), "draft_n_accepted": t.get("draft_n_accepted", 0), "tokens": reply.get("tokens")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--draft-model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--draft-max", type=int, default=7)
    parser.add_argument("--lookup-ngram", type=int, default=3)
    parser.add_argument("--lookup-min-ngram", type=int, default=1)
    parser.add_argument("--task", action="append", help="only these tasks (repeatable)")
    parser.add_argument("--source", action="append", choices=["lookup", "draft model"], help="only these draft sources (repeatable)")
    parser.add_argument("--draft-min-p", type=float, default=0.0, help="the draft model's confidence cut-off (0: always --draft-max)")
    parser.add_argument("--peer", action="store_true", help="also measure llama.cpp's plain, draft-model and n-gram decoding")
    parser.add_argument("--json", help="write all runs to this file")
    args = parser.parse_args()

    chosen = {name: task for name, task in tasks().items() if not args.task or name in args.task}
    sources = {"lookup": ["--lookup", "--lookup-ngram", str(args.lookup_ngram), "--lookup-min-ngram", str(args.lookup_min_ngram),
                          "--draft-max", str(args.draft_max)],
               "draft model": ["--draft-model", args.draft_model, "--draft-max", str(args.draft_max), "--draft-min-p", str(args.draft_min_p)]}
    sources = {name: flags for name, flags in sources.items() if not args.source or name in args.source}
    runs: dict = {"model": args.model, "draft_model": args.draft_model, "draft_max": args.draft_max, "draft_min_p": args.draft_min_p,
                  "sparrow": {}, "peer": {}}
    prompts: dict[str, list[int]] = {}
    for task, (message, tokens) in chosen.items():
        for source, flags in sources.items():
            reports = []
            for rep in range(args.reps):
                report = sparrow(args.model, message, tokens, flags)
                reports.append(report)
                s = report["speculation"]
                print(f"{task} / {source} #{rep + 1}: {report['timings']['predicted_per_second']:.2f} t/s vs plain "
                      f"{s['plain_predicted_per_second']:.2f} ({s['speedup']:.2f}x), accepted {s['accepted']}/{s['drafted']}",
                      file=sys.stderr, flush=True)
            prompts[task] = reports[0]["prompt_tokens"]
            runs["sparrow"][f"{task}/{source}"] = reports
            if args.json:
                Path(args.json).write_text(json.dumps(runs, indent=1))

    if args.peer:
        servers = peer_servers(model_path(args.model), model_path(args.draft_model), args.draft_max, args.draft_min_p, args.lookup_ngram)
        for name, start in servers.items():
            server = start()
            try:
                for task, (_, tokens) in chosen.items():
                    peer_decode(server, prompts[task][:16], 4)  # warm-up
                    results = [peer_decode(server, prompts[task], tokens) for _ in range(args.reps)]
                    runs["peer"][f"{task}/{name}"] = results
                    print(f"llama.cpp {task} / {name}: " + ", ".join(f"{r['predicted_per_second']:.2f}" for r in results) + " t/s",
                          file=sys.stderr, flush=True)
            finally:
                server.close()
            if args.json:
                Path(args.json).write_text(json.dumps(runs, indent=1))

    print(f"\n{args.model}, greedy, 2 threads, draft max {args.draft_max}; medians of {args.reps} runs\n")
    print("| task | draft source | acceptance | accepted per pass | plain t/s | speculative t/s | speed-up | same tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for key, reports in runs["sparrow"].items():
        task, source = key.split("/")
        specs = [r["speculation"] for r in reports]
        same = all(s["same_tokens_as_plain"] for s in specs)
        print(f"| {task} | {source} | {statistics.median(s['acceptance_rate'] for s in specs):.0%} | "
              f"{statistics.median(s['mean_accepted_length'] for s in specs):.2f} | "
              f"{statistics.median(s['plain_predicted_per_second'] for s in specs):.2f} | "
              f"{statistics.median(r['timings']['predicted_per_second'] for r in reports):.2f} | "
              f"{statistics.median(s['speedup'] for s in specs):.2f}x | {'yes' if same else 'NO'} |")
    if runs["peer"]:
        print("\nllama.cpp (xllamacpp), same prompt ids:\n")
        print("| task | plain t/s | draft model t/s (acceptance) | lookup t/s (acceptance) |")
        print("|---|---|---|---|")
        for task in chosen:
            def cell(name: str) -> str:
                results = runs["peer"].get(f"{task}/{name}", [])
                if not results:
                    return "-"
                speed = statistics.median(r["predicted_per_second"] for r in results)
                drafted = sum(r["draft_n"] for r in results)
                accepted = sum(r["draft_n_accepted"] for r in results)
                return f"{speed:.2f}" + (f" ({accepted / drafted:.0%})" if drafted else "")
            print(f"| {task} | {cell('plain')} | {cell('draft model')} | {cell('lookup')} |")


if __name__ == "__main__":
    main()
