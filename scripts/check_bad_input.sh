#!/usr/bin/env bash
# Bad input must end in a message that names the problem and a non-zero exit, never a trap or
# a hang: each case below runs the release binary and checks both.
set -uo pipefail
cd "$(dirname "$0")/.."
sparrow=.build/release/sparrow
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# File names that do not contain the messages looked for.
head -c 50000000 "$($sparrow models path smollm2-135m)" > "$scratch/a.gguf"
head -c 4096 "$($sparrow models path smollm2-135m)" > "$scratch/b.gguf"
printf 'GGUF\x03\x00\x00\x00' > "$scratch/c.gguf"
printf 'not a model' > "$scratch/d.gguf"
printf 'caf\xe9\n' > "$scratch/e.txt"

failures=0
# expect MESSAGE ARGS...: sparrow ARGS exits non-zero within 60 s and prints MESSAGE.
expect() {
    local message=$1; shift
    local output status
    output=$(timeout 60 "$sparrow" "$@" 2>&1 </dev/null); status=$?
    if [[ $status -eq 0 || $status -ge 124 ]] || ! grep -qiF -- "$message" <<<"$output"; then
        echo "FAIL: sparrow $* (exit $status), wanted \"$message\", got: $(head -c 300 <<<"$output")"
        failures=$((failures + 1))
    fi
}

expect "no such model" generate -m "$scratch/missing.gguf" -p hi
expect "file truncated: tensor" generate -m "$scratch/a.gguf" -p hi
expect "only 4080 bytes are left" generate -m "$scratch/b.gguf" -p hi
expect "file truncated" generate -m "$scratch/c.gguf" -p hi
expect "not a GGUF file" generate -m "$scratch/d.gguf" -p hi
expect "is not valid UTF-8" generate -f "$scratch/e.txt"
expect "Unknown option" generate --no-such-flag -p hi
expect "--max-tokens must be 0 or more" generate -n -5 -p hi
expect "--threads must be at least 1" bench -t -1
expect "--temp must be 0 or more" generate --temp -1 -p hi
expect "--top-p must be in (0, 1]" generate --top-p -0.5 -p hi
expect "--ctx must be at least 2" eval perplexity --text README.md --ctx -3
expect "--port must be within 0...65535" serve --port -1
expect "--sparsity-level must be within" generate --sparsity default --sparsity-level -0.5 -p hi
expect "Missing value" generate -n
expect "but the context holds 8" generate -c 8 -p "$(printf 'word %.0s' {1..64})"

if [[ $failures -gt 0 ]]; then
    echo "$failures bad-input case(s) failed"
    exit 1
fi
echo "bad input: every case gave a clear error"
