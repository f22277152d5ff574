#!/usr/bin/env bash
# Runs Sparrow's whole test suite on a release build (numeric code is 10-100x slower in debug).
# The real-model tests need the catalog models; those not cached yet are pulled (and verified) first.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product sparrow
for model in smollm2-135m qwen2.5-coder-0.5b gemma3-270m; do
    .build/release/sparrow models path "$model" >/dev/null 2>&1 || .build/release/sparrow models pull "$model"
done
scripts/check_bad_input.sh
# Serial: each model test runs a spinning thread pool sized to the cores; suites in parallel would
# oversubscribe them.
swift test -c release --no-parallel "$@"
