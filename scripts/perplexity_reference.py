#!/usr/bin/env python3
"""llama.cpp's token-level perplexity of a GGUF model over a text file, in Sparrow's windows.

llama.cpp (through the xllamacpp wheel's embedded llama-server, with make_goldens.py's
settings) is the reference for `sparrow eval perplexity`; both use the same windows:

  tokens  the text (after --skip-chars, at most --max-chars characters) tokenised without
          special tokens, cut to the first --max-tokens; N of them
  bos     whether the model adds a BOS (GGUF tokenizer.ggml.add_bos_token): then every window
          is [BOS] + up to W = ctx - 1 text tokens, else up to W = ctx text tokens
  windows k = 0, 1, ... over text positions [k*S, min(k*S + W, N)), stride S (default W),
          up to and including the first that reaches N; window k scores the positions
          [max(b_k + (bos ? 0 : 1), e_{k-1}), e_k), so every token is scored once, and a
          window's first token only after a BOS
  score   NLL of position p = -log softmax(raw logits after the window's tokens before p)[token]

How the log-probabilities come out of llama-server: every window starts from an empty cache
(its first request has cache_prompt false); the window's tokens before its first scored
position are evaluated in one batch, then each scored position p is one /completion request
whose prompt is the window up to p (token ids, cache_prompt true, so exactly one new token is
decoded) with n_predict 1, n_probs 1, post_sampling_probs false and a logit bias of +1e4 on
tokens[p]. The bias makes the sampler pick tokens[p]; the probability llama-server reports for
the sampled token is the softmax of the raw logits over the whole vocabulary, taken before any
sampler (so before the bias), normalised by llama-server in float32 (a few 1e-5 off an exact
log-softmax). A token that ends inside a UTF-8 character gets no probability from llama-server;
for it the same step is asked for the whole vocabulary's list instead. Every reply is checked:
the sampled token, and that the server evaluated exactly the tokens it should have (prompt_n,
cache_n). These are llama.cpp's
decode-step numerics, one token per step, as `sparrow eval perplexity --stepwise` computes them;
a window evaluated in one batch rounds differently (llama.cpp's CPU kernels depend on the batch
size), which the server cannot show since it returns the last prompt position's logits only.

Outputs: a JSON report (stdout, or --json FILE) with perplexity, tokens (scored), mean_nll, ctx,
stride, bos, model, model_sha256, text, text_tokens, seconds; with --fixture FILE, a golden
fixture for the Swift tests (settings, text_token_ids, windows, every scored token's NLL and the
aggregates). --verify also checks the method on the run itself (see verify_run).

Usage:
  python3 scripts/perplexity_reference.py --model smollm2-135m \\
      --text ../shared/data/austen/sense_and_sensibility.txt --ctx 512 --max-tokens 4096
  python3 scripts/perplexity_reference.py --model gemma3-270m \\
      --text ../shared/data/austen/northanger_abbey.txt --max-tokens 300 --ctx 128 --stride 64 \\
      --fixture Tests/Fixtures/perplexity/gemma3-270m.json [--verify]
  --model takes a catalog name (its sha256 is checked, the file is <models-dir>/<name>.gguf)
  or a path to any .gguf file. Other options: --skip-chars N, --max-chars N, --json FILE,
  --models-dir DIR, --threads N.

Dev-time only; Sparrow itself never runs Python.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import xllamacpp
from gguf import GGUFReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_goldens import (  # noqa: E402
    MODEL_SHA256, N_BATCH, N_CTX, N_THREADS, N_UBATCH, SEED, GoldenError, LlamaServer, sha256_of, write_fixture,
)
from make_goldens import to_json as golden_json  # noqa: E402

SCHEMA_VERSION = 1
FORCING_BIAS = 1e4  # far above any logit gap (these models' logits span well under 100)
# llama-server's float32 sum of up to 262k exponentials, in an order that depends on n_probs:
# the same logits give NLLs a few 1e-5 apart (seen: 4e-5 with Qwen's 151k vocabulary).
NORMALISER_TOLERANCE = 1e-3


# ---------------------------------------------------------------------------
# Windows (the same as Sparrow's PerplexityEvaluation.windows)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Text positions begin..<end, of which scored_from..<end are scored."""
    begin: int
    scored_from: int
    end: int


def make_windows(count: int, window: int, stride: int, bos: bool) -> list[Window]:
    windows: list[Window] = []
    scored_up_to, begin = 0, 0
    while scored_up_to < count:
        end = min(begin + window, count)
        scored_from = max(begin + (0 if bos else 1), scored_up_to)
        if scored_from < end:
            windows.append(Window(begin, scored_from, end))
        scored_up_to = end
        begin += stride
    return windows


# ---------------------------------------------------------------------------
# llama.cpp access
# ---------------------------------------------------------------------------


class ScoringServer:
    """make_goldens.LlamaServer for one model, spoken to over one kept-alive HTTP connection."""

    def __init__(self, model_path: Path, ctx: int, threads: int):
        def configure(params) -> None:
            # No RAM prompt cache: a window's state can then only come from its own requests.
            params.cache_ram_mib = 0
            # Sliding-window models (Gemma 3): a full-size cache for those layers, else llama-server
            # never reuses a cached prefix there and evaluates every prompt afresh; and no context
            # checkpoints, which split a prompt's batch in two where the checkpoint is taken (and so
            # change its rounding). Neither matters for the other models.
            params.swa_full = True
            params.n_ctx_checkpoints = 0

        self._server = LlamaServer(model_path, n_ctx=max(N_CTX, ctx + 1), n_threads=threads, configure=configure)
        self.n_ctx = max(N_CTX, ctx + 1)
        address = urllib.parse.urlparse(self._server.base_url)
        self._connection = http.client.HTTPConnection(address.hostname, address.port, timeout=600)
        self.n_vocab = self._request("GET", "/v1/models", None)["data"][0]["meta"]["n_vocab"]

    def close(self) -> None:
        self._connection.close()
        self._server.close()

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        data = None if body is None else json.dumps(body)
        self._connection.request(method, path, data, {"Content-Type": "application/json"})
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise GoldenError(f"llama-server {path} failed ({response.status}): {payload[:500]!r}")
        return json.loads(payload)

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return self._request("POST", "/tokenize", {"content": text, "add_special": add_special,
                                                   "parse_special": False})["tokens"]

    def complete_one(self, prompt: list[int], fresh: bool, force: int | None, n_probs: int = 1) -> dict:
        """One sampled token after `prompt`; `fresh` empties the cache first, `force` biases a token."""
        body = {
            "prompt": prompt,
            "n_predict": 1,
            "cache_prompt": not fresh,
            "temperature": 0.0,
            "seed": SEED,
            "n_probs": n_probs,
            "post_sampling_probs": False,
            "return_tokens": True,
        }
        if force is not None:
            body["logit_bias"] = [[force, FORCING_BIAS]]
        return self._request("POST", "/completion", body)


def check_evaluated(reply: dict, prompt_n: int, cache_n: int, what: str) -> None:
    timings = reply["timings"]
    if (timings["prompt_n"], timings["cache_n"]) != (prompt_n, cache_n):
        raise GoldenError(f"{what}: llama-server evaluated {timings['prompt_n']} tokens after {timings['cache_n']} "
                          f"cached ones, expected {prompt_n} after {cache_n}")


def logprob_from_full_list(reply: dict, token: int, what: str) -> float:
    entries = reply.get("completion_probabilities") or []
    if not entries:
        raise GoldenError(f"{what}: no probabilities in the reply")
    for entry in entries[0]["top_logprobs"]:
        if entry["id"] == token:
            return entry["logprob"]
    raise GoldenError(f"{what}: token {token} is not among the {len(entries[0]['top_logprobs'])} reported")


class Scorer:
    """Scores positions of one token sequence window by window (see the module docstring)."""

    def __init__(self, server: ScoringServer, tokens: list[int], bos_id: int | None, safe_token: int):
        self.server = server
        self.tokens = tokens
        self.bos_id = bos_id
        self.safe_token = safe_token  # a token that is a whole UTF-8 text on its own
        self.fallbacks = 0
        self.greedy: dict[int, int] = {}  # position -> the raw logits' top token
        self.direct: set[int] = set()     # positions whose reply carried the token's probability

    def window_input(self, window: Window) -> list[int]:
        return ([self.bos_id] if self.bos_id is not None else []) + self.tokens[window.begin:window.end]

    def score_window(self, window: Window) -> list[dict]:
        prompt = self.window_input(window)
        offset = 0 if self.bos_id is None else 1     # input index of text position `begin`
        first_row = window.scored_from - window.begin + offset - 1   # input index predicting scored_from
        fresh = True
        if first_row > 0:
            # The unscored start of the window in one batch, as Sparrow's stepwise evaluation does.
            reply = self.server.complete_one(prompt[:first_row], fresh=True, force=None)
            check_evaluated(reply, first_row, 0, f"window {window} prefix")
            fresh = False
        scored = []
        for row in range(first_row, len(prompt) - 1):
            position = window.begin + row + 1 - offset
            nll = self.score_position(prompt[:row + 1], position, fresh)
            scored.append({"position": position, "token": self.tokens[position], "nll": nll})
            fresh = False
        return scored

    def score_position(self, prompt: list[int], position: int, fresh: bool) -> float:
        token = self.tokens[position]
        what = f"position {position}"
        reply = self.server.complete_one(prompt, fresh=fresh, force=token)
        check_evaluated(reply, len(prompt) if fresh else 1, 0 if fresh else len(prompt) - 1, what)
        if reply["tokens"] != [token]:
            raise GoldenError(f"{what}: the bias did not force token {token} (sampled {reply['tokens']})")
        entries = reply.get("completion_probabilities") or []
        if entries:
            if entries[0]["id"] != token:
                raise GoldenError(f"{what}: probability entry for {entries[0]['id']}, expected {token}")
            logprob = entries[0]["logprob"]
            self.greedy[position] = entries[0]["top_logprobs"][0]["id"]
            self.direct.add(position)
        else:
            # llama-server reports nothing for a token that ends inside a UTF-8 character. Ask again
            # for the whole vocabulary's log-probabilities with a whole-text token sampled instead;
            # the prompt is all cached, so the server decodes its last token again, as one step on
            # the same cache, which gives the same logits.
            self.fallbacks += 1
            reply = self.server.complete_one(prompt, fresh=False, force=self.safe_token, n_probs=self.server.n_vocab)
            check_evaluated(reply, 1, len(prompt) - 1, what + " (again)")
            logprob = logprob_from_full_list(reply, token, what)
            self.greedy[position] = reply["completion_probabilities"][0]["top_logprobs"][0]["id"]
        if not math.isfinite(logprob) or logprob < -1e30:  # llama-server writes -FLT_MAX for p == 0
            raise GoldenError(f"{what}: log-probability {logprob}")
        return -logprob


# ---------------------------------------------------------------------------
# Self-checks (--verify)
# ---------------------------------------------------------------------------


def verify_run(scorer: Scorer, windows: list[Window], scored: list[dict]) -> list[str]:
    """Checks the method on this run; returns what was checked, raises on any disagreement.

    1. The bias changes nothing that is reported. For a few positions of the first window (its
       first, middle and last scored ones, and one whose token is the greedy one), the cache is
       brought to the position's prefix and the position's input token is decoded again with the
       bias and without it, both with n_probs = n_vocab: the two full-vocabulary lists must be
       identical (ids and log-probabilities), head with the unbiased greedy token and sum to 1.
       The run's own value (n_probs 1) must be within NORMALISER_TOLERANCE of the token's value
       there: llama-server sums the softmax's normaliser in float32, one term after another, in the
       order its partial sort of the top n_probs leaves the logits, so n_probs moves the last bits
       of that sum and nothing else. Where the token is
       the greedy one, an unbiased n_probs-1 request must give the run's value bit for bit.
    2. Windows are independent of the cache's past: the last window and then the first are scored
       again (each after a different window) and must give bit-identical NLLs.
    """
    server = scorer.server
    nll = {entry["position"]: entry["nll"] for entry in scored}
    notes = []
    window = windows[0]
    offset = 0 if scorer.bos_id is None else 1
    prompt = scorer.window_input(window)
    first_row = window.scored_from - window.begin + offset - 1
    # Rows (input indices) whose token came with its probability (a token that ends inside a UTF-8
    # character gets none, see Scorer.score_position).
    candidates = [row for row in range(first_row, len(prompt) - 1)
                  if window.begin + row + 1 - offset in scorer.direct]
    if not candidates:
        raise GoldenError("verify: no position of the first window has a whole-text token")
    rows = {candidates[0], candidates[len(candidates) // 2], candidates[-1]}
    rows.update([row for row in candidates
                 if scorer.greedy[window.begin + row + 1 - offset] == scorer.tokens[window.begin + row + 1 - offset]][:1])
    for row in sorted(rows):
        position = window.begin + row + 1 - offset
        token = scorer.tokens[position]
        what = f"verify position {position}"
        # The cache holds the prefix before the position's input token (in one batch); each request
        # below decodes that token in one step on it (the later ones with their prompt all cached).
        if row > 0:
            check_evaluated(server.complete_one(prompt[:row], fresh=True, force=None), row, 0, what + " prefix")
        forced = scorer.score_position(prompt[:row + 1], position, fresh=row == 0)
        replies = {}
        for label, force in (("forced", token), ("unbiased", None), ("other", scorer.safe_token)):
            if label == "other" and replies["unbiased"].get("completion_probabilities"):
                break
            # ("other": the greedy token ends inside a UTF-8 character, so the unbiased reply has no
            # probabilities; a bias towards another token stands in for "unbiased".)
            replies[label] = server.complete_one(prompt[:row + 1], fresh=False, force=force, n_probs=server.n_vocab)
            check_evaluated(replies[label], 1, row, f"{what} ({label})")
        greedy = replies["unbiased"]["tokens"][0]
        reference = "other" if "other" in replies else "unbiased"
        tables = {label: [(entry["id"], entry["logprob"]) for entry in replies[label]["completion_probabilities"][0]["top_logprobs"]]
                  for label in ("forced", reference)}
        table = tables[reference]
        total = math.fsum(math.exp(logprob) for _, logprob in table)
        if replies["forced"]["tokens"] != [token]:
            raise GoldenError(f"{what}: the bias did not force token {token}")
        if tables["forced"] != table:
            raise GoldenError(f"{what}: the biased request reports other log-probabilities than the {reference} one")
        if len(table) != server.n_vocab or table[0][0] != greedy or abs(total - 1) > 1e-3:
            raise GoldenError(f"{what}: unbiased reply has {len(table)} entries, top {table[0][0]}, greedy {greedy}, "
                              f"probabilities summing to {total}")
        full = -dict(table)[token]
        if abs(forced - full) > NORMALISER_TOLERANCE:
            raise GoldenError(f"{what}: run's NLL {forced!r}, full-vocabulary NLL {full!r}")
        rank = [t for t, _ in table].index(token) + 1
        note = (f"position {position}: token {token} (rank {rank} of {len(table)}; greedy {greedy}) NLL {forced:.9g} "
                f"(n_probs 1, biased); biased and {reference if reference == 'unbiased' else 'otherwise biased'} "
                f"n_probs={len(table)} lists identical, token's NLL there "
                f"{full:.9g} (diff {forced - full:+.2g}); the biased distribution would give it NLL ~0")
        if token == greedy:
            reply = server.complete_one(prompt[:row + 1], fresh=False, force=None, n_probs=1)
            check_evaluated(reply, 1, row, f"{what} (greedy)")
            unbiased = -reply["completion_probabilities"][0]["logprob"]
            if reply["tokens"] != [token] or unbiased != forced:
                raise GoldenError(f"{what}: unbiased greedy request gives {reply['tokens']} NLL {unbiased!r}, "
                                  f"biased gave {forced!r}")
            note += f"; unbiased greedy request: same token, NLL {unbiased:.9g} (bit-identical)"
        notes.append(note)
    before = "the checks above"
    for index in ([len(windows) - 1, 0] if len(windows) > 1 else [0]):
        w = windows[index]
        again = scorer.score_window(w)
        if any(entry["nll"] != nll[entry["position"]] for entry in again):
            worst = max(abs(entry["nll"] - nll[entry["position"]]) for entry in again)
            raise GoldenError(f"verify: window {index} scored again differs (by up to {worst})")
        notes.append(f"window {index} (positions {w.begin}..<{w.end}, scored from {w.scored_from}) scored again "
                     f"after {before}: {len(again)} NLLs bit-identical")
        before = f"window {index}"
    return notes


# ---------------------------------------------------------------------------
# Model and text
# ---------------------------------------------------------------------------


def resolve_model(spec: str, models_dir: Path) -> tuple[Path, str]:
    """The model file and its sha256 (checked against make_goldens' table for catalog names)."""
    if spec in MODEL_SHA256:
        path = models_dir / f"{spec}.gguf"
    else:
        path = Path(spec)
    if not path.is_file():
        raise GoldenError(f"model file not found: {path}")
    digest = sha256_of(path)
    if spec in MODEL_SHA256 and digest != MODEL_SHA256[spec]:
        raise GoldenError(f"sha256 mismatch for {path}: expected {MODEL_SHA256[spec]}, got {digest}")
    return path, digest


def gguf_bos(path: Path) -> tuple[bool | None, int | None]:
    reader = GGUFReader(path)
    fields = reader.fields
    add_bos = fields["tokenizer.ggml.add_bos_token"].contents() if "tokenizer.ggml.add_bos_token" in fields else None
    bos_id = fields["tokenizer.ggml.bos_token_id"].contents() if "tokenizer.ggml.bos_token_id" in fields else None
    del reader
    return add_bos, bos_id


def read_text(path: Path, skip_chars: int, max_chars: int | None) -> str:
    if not path.is_file():
        raise GoldenError(f"text file not found: {path}")
    text = path.read_text(encoding="utf-8")[skip_chars:]
    return text if max_chars is None else text[:max_chars]


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

_FLAT_OBJECT = re.compile(r"\{\n\s*(\"[a-z_]+\": -?[\w.+-]+(?:,\n\s*\"[a-z_]+\": -?[\w.+-]+)*)\n\s*\}")


def to_json(document: dict) -> str:
    """make_goldens' layout (number arrays on one line), and flat objects of numbers on one line each."""
    return _FLAT_OBJECT.sub(lambda m: "{" + ", ".join(s.strip() for s in m.group(1).split(",\n")) + "}", golden_json(document))


def write_json(path: Path, document: dict) -> int:
    return write_fixture(path, document, encode=to_json)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    started = time.time()
    model_path, model_sha = resolve_model(args.model, args.models_dir)
    gguf_add_bos, gguf_bos_id = gguf_bos(model_path)
    text = read_text(args.text, args.skip_chars, args.max_chars)

    server = ScoringServer(model_path, args.ctx, args.threads)
    try:
        # bos from the GGUF as the spec says; llama.cpp's own tokenizer must agree.
        server_adds_bos = len(server.tokenize("a", True)) == len(server.tokenize("a", False)) + 1
        bos = server_adds_bos if gguf_add_bos is None else bool(gguf_add_bos)
        if bos != server_adds_bos:
            raise GoldenError(f"GGUF add_bos_token is {gguf_add_bos} but llama.cpp's tokenizer "
                              f"{'adds' if server_adds_bos else 'does not add'} a BOS")
        bos_id = server.tokenize("a", True)[0] if bos else None
        if bos and gguf_bos_id is not None and bos_id != gguf_bos_id:
            raise GoldenError(f"llama.cpp adds token {bos_id} as BOS, the GGUF says {gguf_bos_id}")
        safe = server.tokenize("a", False)
        if len(safe) != 1:
            raise GoldenError(f"'a' is {len(safe)} tokens")

        window = args.ctx - (1 if bos else 0)
        if window < 2:
            raise GoldenError(f"--ctx {args.ctx} leaves no room to score tokens")
        stride = window if args.stride is None else args.stride
        if not 1 <= stride <= window:
            raise GoldenError(f"--stride {stride} must be within 1...{window} (the text tokens in one window)")

        t0 = time.time()
        tokens = server.tokenize(text, False)
        if args.max_tokens is not None:
            tokens = tokens[:args.max_tokens]
        tokenize_seconds = time.time() - t0
        windows = make_windows(len(tokens), window, stride, bos)
        if not windows:
            raise GoldenError(f"the text has {len(tokens)} tokens: nothing to score")

        scorer = Scorer(server, tokens, bos_id, safe[0])
        scored: list[dict] = []
        t0 = time.time()
        for index, w in enumerate(windows):
            scored += scorer.score_window(w)
            print(f"\rwindow {index + 1}/{len(windows)}, {len(scored)} tokens, "
                  f"{len(scored) / (time.time() - t0):.1f} tokens/s", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        score_seconds = time.time() - t0
        positions = [entry["position"] for entry in scored]
        if positions != [p for w in windows for p in range(w.scored_from, w.end)] or positions[-1] != len(tokens) - 1:
            raise GoldenError("scored positions are not the windows' scored positions, each once")
        t0 = time.time()
        verify_notes = verify_run(scorer, windows, scored) if args.verify else []
        verify_seconds = time.time() - t0
        fallbacks = scorer.fallbacks
    finally:
        server.close()

    mean_nll = math.fsum(entry["nll"] for entry in scored) / len(scored)
    aggregates = {
        "perplexity": math.exp(mean_nll),
        "tokens": len(scored),
        "mean_nll": mean_nll,
        "ctx": args.ctx,
        "stride": stride,
        "bos": bos,
        "model": model_path.name,
        "model_sha256": model_sha,
        "text": args.text.name,
        "text_tokens": len(tokens),
    }
    report = dict(aggregates)
    report.update({
        "windows": len(windows),
        "max_tokens": args.max_tokens,
        "skip_chars": args.skip_chars,
        "max_chars": args.max_chars,
        "utf8_fallbacks": fallbacks,
        "tokenize_seconds": round(tokenize_seconds, 3),
        "score_seconds": round(score_seconds, 3),
        "verify_seconds": round(verify_seconds, 3) if args.verify else None,
        "seconds": round(time.time() - started, 3),
        "reference": f"llama.cpp via xllamacpp {xllamacpp.__version__}, decode steps",
    })
    if verify_notes:
        report["verify"] = verify_notes

    if args.fixture is not None:
        fixture = {
            "schema_version": SCHEMA_VERSION,
            "generator": {
                "script": "scripts/perplexity_reference.py",
                "reference": "llama.cpp via xllamacpp (embedded llama-server)",
                "xllamacpp_version": xllamacpp.__version__,
            },
            "settings": {
                "ctx": args.ctx,
                "stride": stride,
                "window_text_tokens": window,
                "max_tokens": args.max_tokens,
                "skip_chars": args.skip_chars,
                "max_chars": args.max_chars,
                "bos": bos,
                "bos_token_id": bos_id,
                "tokenization": "add_special=false, parse_special=false",
                "server": {"n_ctx": server.n_ctx, "n_batch": N_BATCH, "n_ubatch": N_UBATCH,
                           "n_threads": args.threads, "flash_attn": "disabled", "kv_cache_type": "f32"},
                "evaluation": ("each window from an empty cache; its unscored first tokens in one batch, then "
                               "one decode step per scored token (sparrow eval perplexity --stepwise)"),
                "nll": ("-log of llama-server's probability of the token (n_probs, post_sampling_probs=false): "
                        "softmax of the raw logits over the whole vocabulary in float32, its log in float32"),
            },
            **aggregates,
            "text_token_ids": tokens,
            "windows": [{"begin": w.begin, "scored_from": w.scored_from, "end": w.end} for w in windows],
            "scored": scored,
        }
        size = write_json(args.fixture, fixture)
        print(f"wrote {args.fixture} ({size} bytes)", file=sys.stderr)

    if args.json is not None:
        write_json(args.json, report)
        print(f"perplexity {report['perplexity']:.4f} over {report['tokens']} tokens "
              f"(mean NLL {report['mean_nll']:.5f}), {report['seconds']:.1f} s", file=sys.stderr)
    else:
        sys.stdout.write(to_json(report))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help=f"a catalog name ({', '.join(sorted(MODEL_SHA256))}) or a path to a .gguf file")
    parser.add_argument("--text", type=Path, required=True, help="a UTF-8 text file")
    parser.add_argument("--ctx", type=int, default=512, help="tokens per window, the BOS included (default 512)")
    parser.add_argument("--stride", type=int, help="text tokens between window starts (default: a window's)")
    parser.add_argument("--max-tokens", type=int, help="use only the text's first N tokens")
    parser.add_argument("--skip-chars", type=int, default=0, help="drop the text's first N characters (default 0)")
    parser.add_argument("--max-chars", type=int, help="tokenise at most N characters (after --skip-chars)")
    parser.add_argument("--json", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--fixture", type=Path, help="also write a golden fixture for the Swift tests here")
    parser.add_argument("--verify", action="store_true",
                        help="check the method on this run (unbiased full-vocabulary log-probabilities, windows again)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("SPARROW_MODELS_DIR",
                                                    Path.home() / ".cache" / "sparrow" / "models")),
                        help="folder holding <model>.gguf (default: $SPARROW_MODELS_DIR or ~/.cache/sparrow/models)")
    parser.add_argument("--threads", type=int, default=N_THREADS, help=f"llama.cpp threads (default {N_THREADS})")
    args = parser.parse_args()
    if args.ctx < 2:
        parser.error("--ctx must be at least 2")
    if args.max_tokens is not None and args.max_tokens < 2:
        parser.error("--max-tokens must be at least 2")
    if args.skip_chars < 0 or (args.max_chars is not None and args.max_chars < 1):
        parser.error("--skip-chars must be >= 0 and --max-chars >= 1")
    try:
        return run(args)
    except GoldenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
