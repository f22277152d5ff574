#!/usr/bin/env python3
"""Generate the golden fixtures Sparrow's Swift tests compare against.

llama.cpp (through the xllamacpp wheel, which embeds llama-server) is the
reference. For each model this writes, under Tests/Fixtures/golden/<model>/:

  tokenize.json  token ids (and llama.cpp's detokenised text) for tricky strings
  generate.json  greedy 32-token continuations of plain and chat prompts, with
                 the top-5 log-softmax of the raw logits at every generated step

Usage:
  python3 scripts/make_goldens.py                      # all models
  python3 scripts/make_goldens.py --model gemma3-270m  # one model
  python3 scripts/make_goldens.py --models-dir DIR --out-dir DIR

Dev-time only; Sparrow itself never runs Python.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import xllamacpp
from gguf import GGUFReader

SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "golden"
AUSTEN_PATH = Path("/work/shared/data/austen/pride_and_prejudice.txt")

MODEL_SHA256 = {
    "smollm2-135m": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "qwen2.5-coder-0.5b": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "gemma3-270m": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
}

# Fixed llama.cpp settings; recorded verbatim in each generate.json header.
N_CTX = 2048
N_BATCH = 2048
N_UBATCH = 512
N_THREADS = 2
SEED = 1234
N_PREDICT = 32
N_PROBS = 5


class GoldenError(Exception):
    """A problem that stops fixture generation, with a message saying what is wrong."""


# ---------------------------------------------------------------------------
# Fixture inputs
# ---------------------------------------------------------------------------


def austen_paragraphs() -> list[str]:
    if not AUSTEN_PATH.is_file():
        raise GoldenError(f"Austen text not found at {AUSTEN_PATH}")
    text = AUSTEN_PATH.read_text(encoding="utf-8")
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def austen_long_paragraph() -> str:
    """The first paragraph of at least 700 characters (keeps its line breaks)."""
    for paragraph in austen_paragraphs():
        if len(paragraph) >= 700:
            return paragraph
    raise GoldenError("no Austen paragraph of 700+ characters")


def austen_opening(min_chars: int = 750) -> str:
    """Chapter 1 from its first sentence, whole paragraphs, about 200 tokens."""
    paragraphs = austen_paragraphs()
    start = next(i for i, p in enumerate(paragraphs) if p.startswith("It is a truth universally"))
    chosen: list[str] = []
    for paragraph in paragraphs[start:]:
        chosen.append(paragraph)
        if sum(len(p) for p in chosen) >= min_chars:
            break
    return "\n\n".join(chosen)


def tokenize_texts() -> list[tuple[str, str]]:
    """(name, text) pairs; each is tokenised in two modes."""
    texts = [
        ("empty", ""),
        ("single_space", " "),
        ("hello_world", "Hello world"),
        ("greeting_punctuation", "Hello, World! How's it going?"),
        ("accents", "Café naïve résumé façade jalapeño Ångström Zoë"),
        ("combining_marks", "Cafe\u0301 na\u0308ive n\u0303 a\u030a\u0301 (decomposed)"),
        ("greek", "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο."),
        ("cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю."),
        ("arabic", "مرحبا بالعالم! كيف حالك اليوم؟"),
        ("cjk", "你好，世界！今日は良い天気ですね。안녕하세요 세계"),
        ("emoji", "I ❤️ pizza 🍕😀👍🏽"),
        ("emoji_zwj", "Family: 👨\u200d👩\u200d👧\u200d👦, rainbow 🏳️\u200d🌈, coder 🧑🏿\u200d💻"),
        ("flags", "🇫🇷🇯🇵🇺🇸 🇬🇧"),
        ("mixed_script", "English, Français, Русский, 中文, العربية, हिन्दी, 日本語 and 🎉 together."),
    ]
    for number in ["1", "12", "123", "1234", "1234567", "3.14159", "-42", "1,000,000"]:
        texts.append((f"number_{number}", number))
    texts += [
        ("numbers_in_text", "In 2024 we sold 1234567 units at $3.14159 each, -42 returns, 1,000,000 views, 1e10 bytes."),
        ("code_python",
         "def add(a, b):\n\treturn a + b\n\n\nclass Foo:\n    def __init__(self):\n"
         "        self.x = [1, 2, 3]  # comment\n"),
        ("code_swift",
         "struct Point {\n    var x: Double\n    var y: Double\n}\n\n"
         "func norm(_ p: Point) -> Double {\n\treturn (p.x * p.x + p.y * p.y).squareRoot()\n}\n"),
        ("code_json",
         '{\n  "name": "Sparrow",\n  "version": 1,\n  "tags": ["llm", "swift"],\n'
         '  "nested": {"ok": true, "value": null}\n}'),
        ("url", "https://example.com/path/to?q=1&x=y#frag"),
        ("punctuation_runs", "Wait... what?!?! --- ___ *** ;;"),
        ("letter_run", "a" * 48),
        ("case_mix", "ALLCAPS MixedCase camelCaseIdentifier snake_case_name"),
    ]
    for n in range(1, 9):
        texts.append((f"spaces_{n}", "x" + " " * n + "y"))
    texts += [
        ("only_spaces_8", " " * 8),
        ("newline_runs", "a\nb\n\nc\n\n\nd\n\n\n\ne"),
        ("only_newlines_3", "\n\n\n"),
        ("crlf", "line one\r\nline two\r\n\r\nline three"),
        ("tabs", "\t\tindented\twith tabs\t"),
        ("leading_trailing_spaces", "   leading and trailing   "),
        ("leading_newlines", "\n\nleading newlines"),
        ("trailing_newline", "trailing newline\n"),
        ("contractions", "It's, don't, you're, we've, I'm, they'll, he'd."),
        ("contractions_upper", "IT'S DON'T YOU'RE WE'VE I'M THEY'LL HE'D. The dog'S bone."),
        ("special_chatml", "<|im_start|>user\nhi<|im_end|>"),
        ("special_endoftext", "<|endoftext|>"),
        ("special_gemma_turn", "<start_of_turn>user\nhello<end_of_turn>"),
        ("special_bos", "<bos>"),
        ("special_eos", "<eos>"),
        ("special_s_close", "</s>"),
        ("special_inline", "before<|im_end|>after"),
        ("special_partial", "<|im_start"),
        ("special_partial_pipe", "<|im_start|"),
        ("austen_paragraph", austen_long_paragraph()),
    ]
    return texts


PLAIN_PROMPTS = [
    ("factual", "The capital of France is"),
    ("story", "Once upon a time, in a small village by the sea,"),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    ("list", "Here is a list of five fruits:\n1."),
    ("french", "La capitale de l'Allemagne est"),
    ("chinese", "中国的首都是"),
    ("json", '{"name": "Alice", "age": 30, "city":'),
]

CHAT_CONVERSATIONS = [
    ("user_only", [
        {"role": "user", "content": "What is the capital of France?"},
    ]),
    ("system_user", [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three primary colors."},
    ]),
    ("multi_turn", [
        {"role": "user", "content": "Hi! My name is Ada."},
        {"role": "assistant", "content": "Hello Ada! How can I help you today?"},
        {"role": "user", "content": "What is my name?"},
    ]),
    ("system_multi_turn", [
        {"role": "system", "content": "You are a helpful math tutor."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
        {"role": "user", "content": "And 3 times that?"},
    ]),
    ("code_request", [
        {"role": "user", "content": "Write a Python function that reverses a string."},
    ]),
    ("spanish", [
        {"role": "user", "content": "¿Cuál es la capital de España?"},
    ]),
    ("translate", [
        {"role": "system", "content": "You translate English into French."},
        {"role": "user", "content": "Good morning, how are you?"},
    ]),
]


# ---------------------------------------------------------------------------
# llama.cpp access
# ---------------------------------------------------------------------------


class LlamaServer:
    """One model loaded in xllamacpp's embedded llama-server, spoken to over loopback HTTP."""

    def __init__(self, model_path: Path, n_ctx: int = N_CTX, n_threads: int = N_THREADS, configure=None):
        """`configure`, when given, may change the parameters before the server starts."""
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = n_ctx
        params.n_batch = N_BATCH
        params.n_ubatch = N_UBATCH
        params.n_parallel = 1
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.sampling.seed = SEED
        # llama.cpp's most exact configuration: attention in f32 over an f32 cache. Its default
        # (flash attention, f16 cache) rounds Q, K, V and the running attention sum to f16, noise
        # that is an artefact of that configuration rather than of the model.
        params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.cache_type_k = xllamacpp.ggml_type.GGML_TYPE_F32
        params.cache_type_v = xllamacpp.ggml_type.GGML_TYPE_F32
        params.verbosity = 0
        params.port = 0  # any free port, loopback only
        if configure is not None:
            configure(params)
        self._server = xllamacpp.Server(params)
        self.base_url = self._server.listening_address
        if not self.base_url.startswith("http"):
            raise GoldenError(f"llama-server did not start for {model_path} (address {self.base_url!r})")

    def close(self) -> None:
        del self._server
        gc.collect()

    def _request(self, path: str, body: dict | None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise GoldenError(f"llama-server {path} failed ({error.code}): {error.read()[:500]!r}") from error

    def get(self, path: str) -> dict:
        return self._request(path, None)

    def post(self, path: str, body: dict) -> dict:
        return self._request(path, body)

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        reply = self.post("/tokenize", {"content": text, "add_special": add_special,
                                        "parse_special": parse_special})
        return reply["tokens"]

    def detokenize(self, ids: list[int]) -> str:
        return self.post("/detokenize", {"tokens": ids})["content"]

    def apply_chat_template(self, messages: list[dict]) -> str:
        return self.post("/apply-template", {"messages": messages})["prompt"]

    def complete_greedy(self, prompt_ids: list[int]) -> dict:
        return self.post("/completion", {
            "prompt": prompt_ids,
            "n_predict": N_PREDICT,
            "temperature": 0.0,
            "top_k": 1,
            "seed": SEED,
            "n_probs": N_PROBS,
            "post_sampling_probs": False,
            "cache_prompt": False,
            "return_tokens": True,
        })

    def chat_prompt_token_count(self, messages: list[dict]) -> int:
        """How many prompt tokens llama-server's own chat endpoint uses for these messages."""
        reply = self.post("/v1/chat/completions", {
            "messages": messages, "max_tokens": 1, "temperature": 0.0, "cache_prompt": False,
        })
        return reply["usage"]["prompt_tokens"]


# ---------------------------------------------------------------------------
# Model facts
# ---------------------------------------------------------------------------


@dataclass
class ModelInfo:
    name: str
    path: Path
    sha256: str
    gguf_metadata: dict
    has_chat_template: bool


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model_info(name: str, models_dir: Path) -> ModelInfo:
    path = models_dir / f"{name}.gguf"
    if not path.is_file():
        raise GoldenError(f"model file not found: {path}")
    actual = sha256_of(path)
    if actual != MODEL_SHA256[name]:
        raise GoldenError(f"sha256 mismatch for {path}: expected {MODEL_SHA256[name]}, got {actual}")
    reader = GGUFReader(path)
    wanted = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token",
              "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]
    metadata = {key: reader.fields[key].contents() if key in reader.fields else None for key in wanted}
    has_template = "tokenizer.chat_template" in reader.fields
    del reader
    return ModelInfo(name, path, actual, metadata, has_template)


def vocab_header(server: LlamaServer, info: ModelInfo) -> dict:
    meta = server.get("/v1/models")["data"][0]["meta"]
    props = server.get("/props")
    adds_bos = len(server.tokenize("a", True, False)) == len(server.tokenize("a", False, False)) + 1
    return {
        "n_vocab": meta["n_vocab"],
        "vocab_type": {1: "spm", 2: "bpe"}.get(meta["vocab_type"], str(meta["vocab_type"])),
        "gguf_tokenizer_model": info.gguf_metadata["tokenizer.ggml.model"],
        "gguf_tokenizer_pre": info.gguf_metadata["tokenizer.ggml.pre"],
        "gguf_add_bos_token": info.gguf_metadata["tokenizer.ggml.add_bos_token"],
        "gguf_add_space_prefix": info.gguf_metadata["tokenizer.ggml.add_space_prefix"],
        "bos_token_id": info.gguf_metadata["tokenizer.ggml.bos_token_id"],
        "eos_token_id": info.gguf_metadata["tokenizer.ggml.eos_token_id"],
        "bos_token": props["bos_token"],
        "eos_token": props["eos_token"],
        "adds_bos": adds_bos,
    }


def generator_header() -> dict:
    return {
        "script": "scripts/make_goldens.py",
        "reference": "llama.cpp via xllamacpp (embedded llama-server)",
        "xllamacpp_version": xllamacpp.__version__,
    }


# ---------------------------------------------------------------------------
# Fixture builders
# ---------------------------------------------------------------------------

TOKENIZE_MODES = [
    {"add_special": True, "parse_special": True},
    {"add_special": False, "parse_special": False},
]


def build_tokenize_fixture(server: LlamaServer, info: ModelInfo) -> dict:
    cases = []
    for name, text in tokenize_texts():
        for mode in TOKENIZE_MODES:
            ids = server.tokenize(text, mode["add_special"], mode["parse_special"])
            cases.append({
                "name": name,
                "text": text,
                "add_special": mode["add_special"],
                "parse_special": mode["parse_special"],
                "ids": ids,
                "detokenized": server.detokenize(ids),
            })
    return {
        "schema_version": SCHEMA_VERSION,
        "model": info.name,
        "sha256": info.sha256,
        "generator": generator_header(),
        "vocab": vocab_header(server, info),
        "detokenize_semantics": (
            "llama-server /detokenize: concatenation of llama_token_to_piece(id, special=true) for every "
            "id; special/control tokens (BOS included) are rendered as their text, no leading space is "
            "stripped, invalid UTF-8 would appear as U+FFFD"),
        "cases": cases,
    }


def top_logprobs_per_position(server: LlamaServer, name: str, reply: dict,
                              generated_ids: list[int]) -> list[dict | None]:
    """Top-N log-probs aligned with generated_ids, None where llama-server has none.

    llama-server reports one probability entry per *complete UTF-8 text piece*: when a
    character is split over several tokens, only the token that completes it gets an entry
    (holding that position's distribution, its text being the whole character). So each
    entry closes a group of tokens; the group is found as the shortest run whose detokenised
    text equals the entry's text, and its leading tokens get None.
    """
    aligned: list[dict | None] = [None] * len(generated_ids)
    position = 0
    for entry in reply.get("completion_probabilities", []):
        end = position
        while end < len(generated_ids) and not (
                generated_ids[end] == entry["id"]
                and (end == position or server.detokenize(generated_ids[position:end + 1]) == entry["token"])):
            end += 1
        if end == len(generated_ids):
            raise GoldenError(f"{name}: cannot place the probability entry for token {entry['id']}")
        top = entry["top_logprobs"]
        aligned[end] = {"ids": [t["id"] for t in top], "logprobs": [t["logprob"] for t in top]}
        position = end + 1
    return aligned


def generation_case(server: LlamaServer, name: str, kind: str, prompt_text: str,
                    messages: list[dict] | None) -> dict:
    # llama-server tokenises string prompts this way too (add_special and parse_special both true);
    # passing the ids makes the exact prompt explicit.
    prompt_ids = server.tokenize(prompt_text, True, True)
    reply = server.complete_greedy(prompt_ids)
    if reply.get("tokens_evaluated") != len(prompt_ids):
        raise GoldenError(f"{name}: llama-server evaluated {reply.get('tokens_evaluated')} prompt "
                          f"tokens, expected {len(prompt_ids)}")
    generated_ids = reply["tokens"]
    steps = top_logprobs_per_position(server, name, reply, generated_ids)
    for step, token in zip(steps, generated_ids):
        if step is not None and step["ids"][0] != token:
            raise GoldenError(f"{name}: greedy token {token} is not the top logprob {step['ids'][0]}")
    case = {"name": name, "kind": kind}
    if messages is not None:
        case["messages"] = messages
    case.update({
        "prompt_text": prompt_text,
        "prompt_ids": prompt_ids,
        "generated_ids": generated_ids,
        "generated_text": reply["content"],
        "stop_type": reply["stop_type"],
        "stopped_at_eog": reply["stop_type"] == "eos",
        "top_logprobs": steps,
    })
    return case


def build_generate_fixture(server: LlamaServer, info: ModelInfo) -> dict:
    cases = []
    for name, text in PLAIN_PROMPTS + [("austen_opening", austen_opening())]:
        cases.append(generation_case(server, name, "plain", text, None))
    for name, messages in CHAT_CONVERSATIONS:
        rendered = server.apply_chat_template(messages)
        case = generation_case(server, name, "chat", rendered, messages)
        endpoint_count = server.chat_prompt_token_count(messages)
        if endpoint_count != len(case["prompt_ids"]):
            raise GoldenError(f"{name}: /v1/chat/completions used {endpoint_count} prompt tokens, "
                              f"rendered template gives {len(case['prompt_ids'])}")
        cases.append(case)
    props = server.get("/props")
    return {
        "schema_version": SCHEMA_VERSION,
        "model": info.name,
        "sha256": info.sha256,
        "generator": generator_header(),
        "settings": {
            "n_ctx": N_CTX,
            "n_batch": N_BATCH,
            "n_ubatch": N_UBATCH,
            "n_threads": N_THREADS,
            "n_threads_batch": N_THREADS,
            "n_parallel": 1,
            "flash_attn": "disabled",
            "kv_cache_type": "f32",
            "seed": SEED,
            "temperature": 0.0,
            "top_k": 1,
            "n_predict": N_PREDICT,
            "n_probs": N_PROBS,
            "post_sampling_probs": False,
            "cache_prompt": False,
            "prompt_tokenization": "add_special=true, parse_special=true (as llama-server does for text prompts)",
            "logprobs": ("natural-log softmax of the raw logits over the full vocabulary, computed in float32 "
                         "by llama-server (n_probs with post_sampling_probs=false); independent of "
                         "temperature and sampler chain"),
        },
        "chat_template": {
            "source": "gguf" if info.has_chat_template else
                      "llama.cpp fallback (chatml): the GGUF has no tokenizer.chat_template",
            "text": props["chat_template"],
        },
        "cases": cases,
    }


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

# Only arrays json.dumps spread over several lines; a JSON string never holds a raw newline.
_NUMBER_ARRAY = re.compile(r"\[\n\s*(-?[\d.eE+-]+(?:,\n\s*-?[\d.eE+-]+)*)\n\s*\]")


def to_json(document: dict) -> str:
    """Indented JSON with arrays of numbers kept on one line (small, diff-friendly)."""
    text = json.dumps(document, ensure_ascii=False, indent=2)
    return _NUMBER_ARRAY.sub(lambda m: "[" + ", ".join(s.strip() for s in m.group(1).split(",")) + "]",
                             text) + "\n"


def write_fixture(path: Path, document: dict, encode=to_json) -> int:
    """Writes `document` as `encode` lays it out, after checking the layout kept its content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = encode(document)
    if json.loads(text) != document:
        raise GoldenError(f"JSON compaction changed the content of {path}")
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def summarize_generation(fixture: dict) -> list[str]:
    lines = []
    for case in fixture["cases"]:
        first = case["top_logprobs"][0] if case["top_logprobs"] else None
        margin = first["logprobs"][0] - first["logprobs"][1] if first else float("nan")
        missing = sum(step is None for step in case["top_logprobs"])
        preview = case["generated_text"][:48].replace("\n", "\\n")
        lines.append(f"    {case['kind']:5} {case['name']:18} prompt={len(case['prompt_ids']):4} "
                     f"gen={len(case['generated_ids']):2} stop={case['stop_type']:5} "
                     f"top1-top2={margin:6.3f} no_probs={missing:2}  {preview!r}")
    return lines


def generate_for_model(name: str, models_dir: Path, out_dir: Path) -> None:
    started = time.time()
    info = load_model_info(name, models_dir)
    server = LlamaServer(info.path)
    try:
        tokenize_fixture = build_tokenize_fixture(server, info)
        generate_fixture = build_generate_fixture(server, info)
    finally:
        server.close()
    tokenize_bytes = write_fixture(out_dir / name / "tokenize.json", tokenize_fixture)
    generate_bytes = write_fixture(out_dir / name / "generate.json", generate_fixture)
    vocab = tokenize_fixture["vocab"]
    print(f"{name}: sha256 ok, n_vocab={vocab['n_vocab']} ({vocab['vocab_type']}), adds_bos={vocab['adds_bos']}, "
          f"chat template: {generate_fixture['chat_template']['source']}")
    print(f"  tokenize.json: {len(tokenize_fixture['cases'])} cases, {tokenize_bytes} bytes")
    print(f"  generate.json: {len(generate_fixture['cases'])} cases, {generate_bytes} bytes")
    print("\n".join(summarize_generation(generate_fixture)))
    print(f"  done in {time.time() - started:.1f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("SPARROW_MODELS_DIR",
                                                    Path.home() / ".cache" / "sparrow" / "models")),
                        help="folder holding <model>.gguf (default: $SPARROW_MODELS_DIR or ~/.cache/sparrow/models)")
    parser.add_argument("--model", action="append", choices=sorted(MODEL_SHA256),
                        help="regenerate only this model (repeatable; default: all)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"fixture root (default: {DEFAULT_OUT_DIR.relative_to(REPO_ROOT)})")
    args = parser.parse_args()
    try:
        for name in args.model or sorted(MODEL_SHA256):
            generate_for_model(name, args.models_dir, args.out_dir)
    except GoldenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
