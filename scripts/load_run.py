#!/usr/bin/env python3
"""A self-stopping load test of `sparrow serve`, with the standard library only.

Starts `sparrow serve -m MODEL --parallel P --queue-size Q --ctx-size C` on a free loopback
port (or uses --base-url, without the memory samples), warms every slot up with the longest
prompt, then sends --requests requests from --concurrency client threads, a fresh connection each:
  - chat ("Summarise: PASSAGE") or, two in five, text completions (PASSAGE as the prompt), the
    passages a few hundred characters from the Austen novels in /work/shared/data/austen;
  - half streamed (with stream_options.include_usage), half whole;
  - two thirds at temperature 0, a third at temperature 0.8 with a seed (and cache_prompt false);
  - 32 to 64 tokens each.
A passage always comes with the same max_tokens and seed, and the pool of passages is small, so
identical requests recur; their replies must match whether streamed or not and whatever ran
beside them (a cross-talk check). Per request it records the HTTP status, the total time, the
completion tokens from usage and, for streams, that they parse and end with [DONE], the time to
the response headers and the time to the first text. The server's RSS (VmRSS) is sampled after
the warm-up, when half the requests are done, and at the end; /metrics is scraped before and
after, and the growth of its generated-token and request counters compared with what the
clients saw.

Exits non-zero if any request failed, identical requests got different replies, the metrics
disagree, RSS grew more than --max-rss-growth (20%) from after the warm-up to the end, or the
server did not exit cleanly on SIGTERM.
A release build must exist (`swift build -c release --product sparrow`). Dev-time only.

  python3 scripts/load_run.py [-m smollm2-135m] [--requests 200] [--concurrency 8] \\
      [--parallel 4] [--queue-size 64] [--ctx-size 2048] [-t THREADS] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_client_check import SparrowServer, add_server_options  # noqa: E402

AUSTEN = Path("/work/shared/data/austen")
REQUEST_TIMEOUT = 600


@dataclass(frozen=True)
class Spec:
    """One request to send."""

    index: int
    endpoint: str  # "chat" or "completion"
    stream: bool
    passage: int
    prompt: str
    max_tokens: int
    temperature: float
    seed: int | None

    def body(self, model: str) -> dict:
        body: dict = {"model": model, "max_tokens": self.max_tokens, "temperature": self.temperature, "stream": self.stream}
        if self.seed is not None:
            # A seed reproduces a reply only from a fresh prefill: a cached prefix was summed in
            # other batch sizes, and a last-bit difference can change a sampled token.
            body["seed"] = self.seed
            body["cache_prompt"] = False
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": "Summarise: " + self.prompt}]
        else:
            body["prompt"] = self.prompt
        return body

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"

    @property
    def same_reply_key(self) -> tuple:
        """Requests with equal keys must get equal replies."""
        return (self.endpoint, self.passage, self.temperature)


@dataclass
class Outcome:
    """What one request got."""

    index: int
    endpoint: str
    stream: bool
    ok: bool = False
    status: int | None = None
    error: str | None = None
    first_byte_s: float | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    completion_tokens: int = 0
    finish_reason: str | None = None
    text: str = field(default="", repr=False)


def passages(count: int, rng: random.Random, shortest: int = 200, longest: int = 600) -> list[str]:
    """Paragraphs of a few hundred characters, whitespace collapsed, drawn from all the novels."""
    found = []
    for book in sorted(AUSTEN.glob("*.txt")):
        for paragraph in re.split(r"\n\s*\n", book.read_text(encoding="utf-8")):
            text = " ".join(paragraph.split())
            if shortest <= len(text) <= longest:
                found.append(text)
    if len(found) < count:
        sys.exit(f"only {len(found)} passages of {shortest}-{longest} characters in {AUSTEN}")
    return rng.sample(found, count)


def make_specs(requests: int, pool: list[str], rng: random.Random) -> list[Spec]:
    # Per passage one max_tokens and one seed, so that equal keys mean equal requests.
    lengths = [rng.randint(32, 64) for _ in pool]
    seeds = [rng.randrange(1 << 31) for _ in pool]
    specs = []
    for i in range(requests):
        p = rng.randrange(len(pool))
        sampled = rng.random() < 1 / 3
        specs.append(Spec(index=i, endpoint="chat" if rng.random() < 0.6 else "completion", stream=rng.random() < 0.5, passage=p,
                          prompt=pool[p], max_tokens=lengths[p], temperature=0.8 if sampled else 0.0,
                          seed=seeds[p] if sampled else None))
    return specs


def send(base_url: str, model: str, spec: Spec) -> Outcome:
    """Sends one request on a fresh connection and checks its reply's shape."""
    outcome = Outcome(spec.index, spec.endpoint, spec.stream)
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT)
    start = time.perf_counter()
    try:
        connection.request("POST", spec.path, body=json.dumps(spec.body(model)), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        outcome.first_byte_s = time.perf_counter() - start
        outcome.status = response.status
        if response.status != 200:
            outcome.error = f"HTTP {response.status}: {response.read()[:300]!r}"
        elif spec.stream:
            read_stream(response, spec, outcome, start)
        else:
            read_whole(response, spec, outcome)
    except Exception as error:  # noqa: BLE001 - any exception fails this request only
        outcome.error = f"{type(error).__name__}: {error}"
    finally:
        outcome.total_s = time.perf_counter() - start
        connection.close()
    if outcome.error is None:
        if outcome.finish_reason not in ("stop", "length"):
            outcome.error = f"finish_reason {outcome.finish_reason!r}"
        elif not 0 <= outcome.completion_tokens <= spec.max_tokens:
            outcome.error = f"completion_tokens {outcome.completion_tokens} outside 0...{spec.max_tokens}"
    outcome.ok = outcome.error is None
    return outcome


def choice_text(spec: Spec, choice: dict) -> str:
    if spec.endpoint == "chat":
        return (choice.get("delta") or choice.get("message") or {}).get("content") or ""
    return choice.get("text") or ""


def read_whole(response: http.client.HTTPResponse, spec: Spec, outcome: Outcome) -> None:
    reply = json.loads(response.read())
    choice = reply["choices"][0]
    outcome.text = choice_text(spec, choice)
    outcome.finish_reason = choice["finish_reason"]
    outcome.completion_tokens = reply["usage"]["completion_tokens"]


def read_stream(response: http.client.HTTPResponse, spec: Spec, outcome: Outcome, start: float) -> None:
    """Reads server-sent events up to [DONE]; a stream that stops short of it is a failure."""
    text, usage, done = [], None, False
    while not done:
        line = response.readline()
        if not line:
            outcome.error = "the stream ended without data: [DONE]"
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if not line.startswith("data: "):
            continue  # blank separators (and comments, if a server sends them)
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        if "error" in event:
            outcome.error = f"error event: {event['error'].get('message')}"
            return
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices", []):
            piece = choice_text(spec, choice)
            if piece and outcome.first_token_s is None:
                outcome.first_token_s = time.perf_counter() - start
            text.append(piece)
            if choice.get("finish_reason"):
                outcome.finish_reason = choice["finish_reason"]
    if usage is None:
        outcome.error = "no usage chunk despite stream_options.include_usage"
        return
    outcome.text = "".join(text)
    outcome.completion_tokens = usage["completion_tokens"]


def rss_mib(pid: int | None) -> float | None:
    """The process's resident memory, or None without a process to read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def wait_idle(server: SparrowServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = server.get_json("/health")
        except OSError:
            return  # a dead server shows in the requests and the metrics
        if health["slots_busy"] == 0 and health["queued"] == 0:
            return
        time.sleep(0.05)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, linearly interpolated between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(values: list[float]) -> dict:
    return {f"p{q}": percentile(values, q) for q in (50, 90, 99)} | {"n": len(values)}


def compare_repeats(specs: list[Spec], outcomes: list[Outcome]) -> tuple[int, list[str]]:
    """How many successful replies repeated an earlier identical request, and those that differ."""
    first: dict[tuple, Outcome] = {}
    compared, found = 0, []
    for spec, outcome in zip(specs, outcomes):
        if not outcome.ok:
            continue
        seen = first.setdefault(spec.same_reply_key, outcome)
        if seen is outcome:
            continue
        compared += 1
        if (seen.text, seen.completion_tokens) != (outcome.text, outcome.completion_tokens):
            found.append(f"request {outcome.index} ({'streamed' if outcome.stream else 'whole'}) != request {seen.index} "
                         f"({'streamed' if seen.stream else 'whole'}), {spec.endpoint} passage {spec.passage} "
                         f"T={spec.temperature}: {outcome.text[:60]!r} vs {seen.text[:60]!r}")
    return compared, found


def scrape(server: SparrowServer) -> dict[str, float]:
    try:
        return parse_metrics(server.get_text("/metrics"))
    except OSError:
        return {}


def run(args: argparse.Namespace, server: SparrowServer) -> dict:
    # Counters are compared as deltas, so a server that has already served (--base-url) works too.
    metrics_start = scrape(server)
    rng = random.Random(args.seed)
    pool = passages(args.passages, rng)
    specs = make_specs(args.requests, pool, rng)
    # Slots keep the cache pages they touched, so the warm-up fills every slot with the longest
    # prompt and reply any request will send: later growth is then growth, not first touches.
    longest = max(range(len(pool)), key=lambda p: len(pool[p]))
    kinds = [("chat", False), ("chat", True), ("completion", False), ("completion", True)]
    warm_up = [Spec(-1 - i, *kinds[i % len(kinds)], longest, pool[longest], 64, 0.0, None) for i in range(2 * args.parallel)]
    with ThreadPoolExecutor(max_workers=len(warm_up)) as executor:
        warm_outcomes = list(executor.map(lambda spec: send(server.base_url, args.model, spec), warm_up))
    wait_idle(server)
    rss = {"before": rss_mib(server.pid)}

    done = 0
    done_lock = threading.Lock()

    def one(spec: Spec) -> Outcome:
        nonlocal done
        outcome = send(server.base_url, args.model, spec)
        with done_lock:
            done += 1
            if done == args.requests // 2:
                rss["mid"] = rss_mib(server.pid)
            if not args.json and (done % max(1, args.requests // 10) == 0 or done == args.requests):
                print(f"  {done}/{args.requests} done, {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        return outcome

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as executor:
        outcomes = list(executor.map(one, specs))
    wall = time.perf_counter() - start
    # A reply can reach its client before the server frees its slot and counts its tokens.
    wait_idle(server)
    rss["after"] = rss_mib(server.pid)
    rss.setdefault("mid", None)
    metrics = {name: value - metrics_start.get(name, 0) for name, value in scrape(server).items()}

    failures = [o for o in outcomes if not o.ok]
    warm_up_failures = [o for o in warm_outcomes if not o.ok]
    generated = sum(o.completion_tokens for o in outcomes)
    everything = warm_outcomes + outcomes
    # The server counts tokens of finished generations and requests by endpoint; every request here finished.
    expected_metrics = {
        "sparrow_generated_tokens_total": sum(o.completion_tokens for o in everything),
        'sparrow_requests_total{endpoint="chat_completions",status="200"}': sum(o.endpoint == "chat" and o.status == 200 for o in everything),
        'sparrow_requests_total{endpoint="completions",status="200"}': sum(o.endpoint == "completion" and o.status == 200 for o in everything),
    }
    metric_errors = [f"{name} = {metrics.get(name)}, clients saw {value}" for name, value in expected_metrics.items()
                     if metrics.get(name) != value]
    repeats, differing = compare_repeats(specs, outcomes)
    growth = (rss["after"] / rss["before"] - 1) if rss["before"] and rss["after"] else None
    streamed = [o for o in outcomes if o.stream and o.ok]
    return {
        "model": args.model,
        # The options only describe a server this script started.
        "server": {"base_url": server.base_url, "started": server.pid is not None, "parallel": args.parallel,
                   "queue_size": args.queue_size, "ctx_size": args.ctx_size, "threads": args.threads},
        "requests": len(outcomes),
        "concurrency": args.concurrency,
        "mix": {"chat": sum(s.endpoint == "chat" for s in specs), "completion": sum(s.endpoint == "completion" for s in specs),
                "streamed": sum(s.stream for s in specs), "sampled": sum(s.temperature > 0 for s in specs)},
        "failures": len(failures),
        "warm_up_failures": len(warm_up_failures),
        # Warm-up requests have negative indices.
        "failure_examples": [f"request {o.index} ({o.endpoint}, {'streamed' if o.stream else 'whole'}): {o.error}"
                             for o in (warm_up_failures + failures)[:10]],
        "wall_s": wall,
        "requests_per_s": len(outcomes) / wall,
        "generated_tokens": generated,
        "generated_tokens_per_s": generated / wall,
        "finish_reasons": {r: sum(o.finish_reason == r for o in outcomes) for r in ("stop", "length")},
        "latency_s": {
            "total": latency_summary([o.total_s for o in outcomes if o.ok]),
            "first_byte_streamed": latency_summary([o.first_byte_s for o in streamed]),
            "first_token_streamed": latency_summary([o.first_token_s for o in streamed if o.first_token_s is not None]),
        },
        "rss_mib": rss | {"growth": growth},
        "repeats_compared": repeats,
        "mismatches": differing,
        "metrics": {name: metrics.get(name) for name in expected_metrics}
                   | {name: value for name, value in metrics.items() if name.startswith("sparrow_requests_total")}
                   | {"sparrow_prompt_tokens_total": metrics.get("sparrow_prompt_tokens_total"),
                      "sparrow_time_to_first_token_seconds_sum": metrics.get("sparrow_time_to_first_token_seconds_sum"),
                      "sparrow_request_duration_seconds_sum": metrics.get("sparrow_request_duration_seconds_sum")},
        "metric_errors": metric_errors,
        "rss_ok": growth is None or growth <= args.max_rss_growth,
    }


def report(s: dict) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    server = s["server"]
    options = (f"--parallel {server['parallel']} --queue-size {server['queue_size']} --ctx-size {server['ctx_size']}"
               + (f" --threads {server['threads']}" if server["threads"] else "")) if server["started"] else f"at {server['base_url']}"
    lines = [
        f"model {s['model']}, server {options}, {s['concurrency']} clients",
        f"requests      {s['requests']} ({s['mix']['chat']} chat, {s['mix']['completion']} completion; "
        f"{s['mix']['streamed']} streamed; {s['mix']['sampled']} at T=0.8), {s['failures']} failed"
        + (f" (and {s['warm_up_failures']} of the warm-up)" if s["warm_up_failures"] else ""),
        f"wall          {s['wall_s']:.1f} s, {s['requests_per_s']:.2f} requests/s",
        f"generated     {s['generated_tokens']} tokens, {s['generated_tokens_per_s']:.1f} tokens/s aggregate "
        f"(finish: {s['finish_reasons']['stop']} stop, {s['finish_reasons']['length']} length)",
    ]
    for name, label in (("total", "latency"), ("first_byte_streamed", "first byte"), ("first_token_streamed", "first token")):
        latency = s["latency_s"][name]
        lines.append(f"{label:<14}p50 {ms(latency['p50'])} ms, p90 {ms(latency['p90'])} ms, p99 {ms(latency['p99'])} ms "
                     f"({latency['n']} {'requests' if name == 'total' else 'streams'})")
    rss = s["rss_mib"]
    growth = "-" if rss["growth"] is None else f"{rss['growth'] * 100:+.1f}%"
    lines.append(f"repeats       {s['repeats_compared']} replies to repeated requests compared, {len(s['mismatches'])} differ")
    lines.append(f"RSS           before {mib(rss['before'])} MiB, mid {mib(rss['mid'])} MiB, after {mib(rss['after'])} MiB ({growth})")
    m = s["metrics"]
    label_values = re.compile(r'="([^"]*)"')
    by_status = [" ".join(label_values.findall(k)) + f": {v:.0f}" for k, v in m.items()
                 if k.startswith("sparrow_requests_total") and v is not None]
    lines.append(f"/metrics      during the run: generated {number(m['sparrow_generated_tokens_total'])}, "
                 f"prompt {number(m['sparrow_prompt_tokens_total'])} tokens; requests {', '.join(by_status) or '-'}")
    lines += [f"FAILED        {e}" for e in s["failure_examples"]]
    lines += [f"MISMATCH      {e}" for e in s["mismatches"]]
    lines += [f"METRICS       {e}" for e in s["metric_errors"]]
    if not s["rss_ok"]:
        lines.append(f"RSS GROWTH    {growth} exceeds the limit")
    if s["server_exit_status"] not in (None, 0):
        lines.append(f"SHUTDOWN      sparrow serve exited with status {s['server_exit_status']} on SIGTERM")
    lines.append("PASS" if passed(s) else "FAIL")
    return "\n".join(lines)


def passed(s: dict) -> bool:
    return (s["failures"] == 0 and s["warm_up_failures"] == 0 and not s["mismatches"] and not s["metric_errors"] and s["rss_ok"]
            and s["server_exit_status"] in (None, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(ap)
    ap.add_argument("--parallel", type=int, default=4, help="the server's slots")
    ap.add_argument("--queue-size", type=int, default=64, help="the server's queue")
    ap.add_argument("--ctx-size", type=int, default=2048, help="the server's context per slot")
    ap.add_argument("-t", "--threads", type=int, help="the server's worker threads (default: its own, all cores)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8, help="client threads sending at once")
    ap.add_argument("--passages", type=int, default=48, help="the pool of Austen passages prompts come from")
    ap.add_argument("--seed", type=int, default=1813, help="seeds the choice of passages and the request mix")
    ap.add_argument("--max-rss-growth", type=float, default=0.20, help="the largest RSS growth allowed, as a fraction")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()
    if min(args.requests, args.concurrency, args.passages, args.parallel, args.ctx_size) < 1 or args.queue_size < 0:
        ap.error("--requests, --concurrency, --passages, --parallel and --ctx-size must be at least 1, --queue-size 0 or more")

    server_args = ["--parallel", str(args.parallel), "--queue-size", str(args.queue_size), "--ctx-size", str(args.ctx_size)]
    if args.threads:
        server_args += ["--threads", str(args.threads)]
    with SparrowServer(args.sparrow, args.model, server_args, base_url=args.base_url) as server:
        summary = run(args, server)
        status = server.close()
    summary["server_exit_status"] = status
    print(json.dumps(summary, indent=2) if args.json else report(summary))
    sys.exit(0 if passed(summary) else 1)


if __name__ == "__main__":
    main()
