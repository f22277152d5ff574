#!/usr/bin/env python3
"""Checks that the official `openai` Python package works against `sparrow serve`.

Starts `sparrow serve` on a free loopback port (or uses a running server given by --base-url),
waits for GET /health, then through `openai.OpenAI(base_url=..., api_key="unused")`:
  chat             a chat completion at temperature 0, 32 tokens: non-empty content, a finish
                   reason of stop or length, usage totals that add up;
  chat-stream      the same request streamed with stream_options.include_usage: the deltas
                   concatenate to exactly the same content, and one usage chunk ends the stream;
  completion       client.completions.create whole and streamed: the same text either way;
  logprobs         chat with logprobs=True, top_logprobs=3: one entry per completion token, each
                   with 3 alternatives, the greedy token the most likely one; streamed the same;
  models           client.models.list() lists the model;
  errors           an unknown model raises openai.NotFoundError, max_tokens past the context
                   openai.BadRequestError.
Prints PASS or FAIL per check and exits non-zero on any failure. A release build must exist
(`swift build -c release --product sparrow`) unless --base-url is given. Dev-time only.

  pip install -r scripts/requirements-dev.txt
  python3 scripts/openai_client_check.py [-m smollm2-135m] [--sparrow .build/release/sparrow]
  python3 scripts/openai_client_check.py --base-url http://127.0.0.1:8080 -m smollm2-135m

`SparrowServer` here needs only the standard library; scripts/load_run.py reuses it.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPARROW = REPO / ".build" / "release" / "sparrow"
DEFAULT_MODEL = "smollm2-135m"


class SparrowServer:
    """`sparrow serve` started on a free port, or a server already running at `base_url`.

    Use as a context manager: a server it started is always terminated on exit.
    """

    def __init__(self, sparrow: str | Path = SPARROW, model: str = DEFAULT_MODEL, extra_args: list[str] | None = None,
                 base_url: str | None = None, startup_timeout: float = 300):
        self.process: subprocess.Popen | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        if base_url:
            # Accept the OpenAI-style base URL too: the server's own routes live at its root.
            self.base_url = re.sub(r"/v1/?$", "", base_url.rstrip("/"))
        else:
            self.base_url = self._start(Path(sparrow), model, extra_args or [], startup_timeout)
        self._wait_healthy(startup_timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _start(self, sparrow: Path, model: str, extra_args: list[str], timeout: float) -> str:
        if not sparrow.is_file():
            raise RuntimeError(f"{sparrow} is missing: run `swift build -c release --product sparrow`")
        # Port 0 and reading the port from the banner: no race with other processes for a port.
        command = [str(sparrow), "serve", "-m", model, "--port", "0", *extra_args]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, errors="replace")
        address: list[str] = []
        found = threading.Event()

        def drain() -> None:
            # Keeps reading for the server's lifetime, or a full pipe would block its logging.
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                match = re.search(r"serving .* on (http://\S+)", line)
                if match and not found.is_set():
                    address.append(match.group(1))
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(timeout) or not address:
            self.close()
            raise RuntimeError("sparrow serve did not start:\n" + "\n".join(self.log))
        return address[0]

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.get_json("/health").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"sparrow serve exited ({self.process.returncode}):\n" + "\n".join(self.log))
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{self.base_url}/health did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def get_text(self, path: str, timeout: float = 30) -> str:
        with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
            return response.read().decode()

    def get_json(self, path: str, timeout: float = 30) -> dict:
        return json.loads(self.get_text(path, timeout))

    def close(self) -> int | None:
        """Terminates a server this object started; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> SparrowServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_server_options(ap: argparse.ArgumentParser) -> None:
    """The options both scripts take to start or find a server."""
    ap.add_argument("--sparrow", default=str(SPARROW), metavar="PATH", help="the sparrow binary (default: the release build)")
    ap.add_argument("-m", "--model", default=DEFAULT_MODEL, help="catalog name or GGUF path to serve, and the model name to request")
    ap.add_argument("--base-url", metavar="URL", help="use the server running at URL instead of starting one")


# MARK: Checks

CHAT_MESSAGES = [{"role": "user", "content": "Write two sentences about a lighthouse keeper."}]
COMPLETION_PROMPT = "It is a truth universally acknowledged, that"
MAX_TOKENS = 32


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_usage(usage, max_tokens: int, finish_reason: str) -> None:
    expect(usage is not None, "no usage")
    expect(usage.prompt_tokens > 0, f"prompt_tokens {usage.prompt_tokens}")
    expect(0 <= usage.completion_tokens <= max_tokens, f"completion_tokens {usage.completion_tokens} outside 0...{max_tokens}")
    expect(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
           f"total_tokens {usage.total_tokens} != {usage.prompt_tokens} + {usage.completion_tokens}")
    # (A stop may use every token: the last one can end a stop string.)
    expect(finish_reason != "length" or usage.completion_tokens == max_tokens,
           f"finish_reason length after {usage.completion_tokens} of {max_tokens} tokens")


def read_stream(stream, text_of) -> tuple[str, str | None, object, set[str]]:
    """Concatenated text, the finish reason, the usage and the chunk ids of a stream."""
    text, finish, usage, ids = [], None, None, set()
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            expect(usage is None, "two usage chunks")
            expect(not chunk.choices, "the usage chunk has choices")
            usage = chunk.usage
            continue
        expect(usage is None, "a chunk after the usage chunk")
        for choice in chunk.choices:
            text.append(text_of(choice) or "")
            if choice.finish_reason is not None:
                expect(finish is None, "two finish reasons")
                finish = choice.finish_reason
    return "".join(text), finish, usage, ids


def check_chat(client, model: str, state: dict) -> str:
    reply = client.chat.completions.create(model=model, messages=CHAT_MESSAGES, temperature=0, max_tokens=MAX_TOKENS)
    expect(reply.object == "chat.completion", f"object {reply.object!r}")
    expect(len(reply.choices) == 1, f"{len(reply.choices)} choices")
    choice = reply.choices[0]
    expect(choice.message.role == "assistant", f"role {choice.message.role!r}")
    content = choice.message.content
    expect(isinstance(content, str) and content != "", f"content {content!r}")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    check_usage(reply.usage, MAX_TOKENS, choice.finish_reason)
    state["chat"] = reply
    return f"{reply.usage.completion_tokens} tokens, {choice.finish_reason}: {content[:40]!r}..."


def check_chat_stream(client, model: str, state: dict) -> str:
    expect("chat" in state, "needs the chat check's reply")
    whole = state["chat"]
    stream = client.chat.completions.create(model=model, messages=CHAT_MESSAGES, temperature=0, max_tokens=MAX_TOKENS,
                                            stream=True, stream_options={"include_usage": True})
    text, finish, usage, ids = read_stream(stream, lambda choice: choice.delta.content)
    expect(len(ids) == 1, f"chunk ids differ: {sorted(ids)}")
    expect(text == whole.choices[0].message.content, f"streamed {text!r} != whole {whole.choices[0].message.content!r}")
    expect(finish == whole.choices[0].finish_reason, f"finish_reason {finish!r} != {whole.choices[0].finish_reason!r}")
    expect(usage is not None, "no usage chunk with stream_options.include_usage")
    check_usage(usage, MAX_TOKENS, finish)
    expect(usage.model_dump() == whole.usage.model_dump(), f"usage {usage} != {whole.usage}")
    return f"{usage.completion_tokens} tokens, text and usage identical"


def check_completion(client, model: str, state: dict) -> str:
    reply = client.completions.create(model=model, prompt=COMPLETION_PROMPT, temperature=0, max_tokens=MAX_TOKENS)
    expect(reply.object == "text_completion", f"object {reply.object!r}")
    choice = reply.choices[0]
    expect(isinstance(choice.text, str) and choice.text != "", f"text {choice.text!r}")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    check_usage(reply.usage, MAX_TOKENS, choice.finish_reason)
    stream = client.completions.create(model=model, prompt=COMPLETION_PROMPT, temperature=0, max_tokens=MAX_TOKENS,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage, _ = read_stream(stream, lambda choice: choice.text)
    expect(text == choice.text, f"streamed {text!r} != whole {choice.text!r}")
    expect(finish == choice.finish_reason, f"finish_reason {finish!r} != {choice.finish_reason!r}")
    expect(usage is not None and usage.model_dump() == reply.usage.model_dump(), f"streamed usage {usage} != {reply.usage}")
    return f"{reply.usage.completion_tokens} tokens, {choice.finish_reason}: {choice.text[:40]!r}..."


def check_logprobs(client, model: str, state: dict) -> str:
    reply = client.chat.completions.create(model=model, messages=CHAT_MESSAGES, temperature=0, max_tokens=MAX_TOKENS,
                                           logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    expect(choice.logprobs is not None and choice.logprobs.content is not None, "no logprobs.content")
    entries = choice.logprobs.content
    expect(len(entries) == reply.usage.completion_tokens, f"{len(entries)} entries for {reply.usage.completion_tokens} tokens")
    for i, entry in enumerate(entries):
        expect(len(entry.top_logprobs) == 3, f"entry {i} has {len(entry.top_logprobs)} top_logprobs")
        expect(entry.logprob <= 0, f"entry {i} logprob {entry.logprob}")
        expect(entry.bytes is not None and bytes(entry.bytes).decode("utf-8", "replace") == entry.token,
               f"entry {i} bytes do not spell {entry.token!r}")
        tops = [top.logprob for top in entry.top_logprobs]
        expect(tops == sorted(tops, reverse=True), f"entry {i} top_logprobs not in descending order: {tops}")
        # Greedy decoding picks the most likely token.
        expect(entry.top_logprobs[0].token == entry.token and abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-4,
               f"entry {i}: chose {entry.token!r} ({entry.logprob}) but the most likely is "
               f"{entry.top_logprobs[0].token!r} ({entry.top_logprobs[0].logprob})")
    if "chat" in state:
        expect(choice.message.content == state["chat"].choices[0].message.content, "logprobs changed the greedy content")
    streamed = []
    for chunk in client.chat.completions.create(model=model, messages=CHAT_MESSAGES, temperature=0, max_tokens=MAX_TOKENS,
                                                logprobs=True, top_logprobs=3, stream=True):
        for streamed_choice in chunk.choices:
            streamed += streamed_choice.logprobs.content if streamed_choice.logprobs and streamed_choice.logprobs.content else []
    expect([e.model_dump() for e in streamed] == [e.model_dump() for e in entries], "streamed logprobs differ from the whole reply's")
    return f"{len(entries)} entries of 3 alternatives, streamed the same"


def check_models(client, model: str, state: dict) -> str:
    ids = [m.id for m in client.models.list()]
    served = {model, Path(model).name, Path(model).stem}
    expect(served & set(ids), f"{model!r} not in {ids}")
    return f"models {ids}"


def check_errors(client, model: str, state: dict) -> str:
    import openai

    try:
        client.chat.completions.create(model="no-such-model", messages=CHAT_MESSAGES, max_tokens=4)
        raise CheckFailed("an unknown model did not raise")
    except openai.NotFoundError as error:
        expect(error.status_code == 404 and error.code == "model_not_found", f"404 with code {error.code!r}")
    context = state["context_size"]
    try:
        client.chat.completions.create(model=model, messages=CHAT_MESSAGES, max_tokens=context + 1)
        raise CheckFailed(f"max_tokens {context + 1} did not raise")
    except openai.BadRequestError as error:
        expect(error.status_code == 400 and error.code == "context_length_exceeded", f"400 with code {error.code!r}")
    return f"NotFoundError, then BadRequestError for max_tokens {context + 1} (context {context})"


CHECKS = [("chat", check_chat), ("chat-stream", check_chat_stream), ("completion", check_completion),
          ("logprobs", check_logprobs), ("models", check_models), ("errors", check_errors)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(ap)
    args = ap.parse_args()
    # Imported here so that load_run.py can reuse SparrowServer without the package.
    import openai

    failed: list[str] = []
    with SparrowServer(args.sparrow, args.model, base_url=args.base_url) as server:
        print(f"openai {openai.__version__} against {server.base_url}" + (f" (pid {server.pid})" if server.pid else ""))
        # No retries: a retried 5xx would hide the server's first answer.
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=300)
        state = {"context_size": server.get_json("/v1/models")["data"][0]["meta"]["n_ctx"]}
        for name, check in CHECKS:
            try:
                print(f"PASS {name}: {check(client, args.model, state)}")
            except Exception as error:  # noqa: BLE001 - any exception is this check's failure
                failed.append(name)
                print(f"FAIL {name}: {type(error).__name__}: {error}")
        status = server.close()
        if status not in (None, 0):
            failed.append("shutdown")
            print(f"FAIL shutdown: sparrow serve exited with status {status} on SIGTERM")
    print(f"FAILED: {', '.join(failed)}" if failed else f"all {len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()
