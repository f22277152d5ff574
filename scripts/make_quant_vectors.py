#!/usr/bin/env python3
"""Reference vectors for Sparrow's quantised kernels, from the `gguf` package's numpy code.

For every computable tensor type this writes Tests/Fixtures/quant/<type>.bin (the encoded
rows, GGML block layout) and <type>.f32 (gguf's reference dequantisation, little-endian f32),
plus index.json describing shapes and how each vector was made.

gguf 0.19.0 has no quantiser for Q4_K and Q6_K (only dequantisers), so for those two the
encoded bytes are random valid blocks (random scales/quants, a finite f16 super-scale of
realistic magnitude) and the reference floats come from gguf's dequantiser.
"""
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROWS, COLS = 3, 512  # 2 super-blocks / 16 small blocks per row
OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "quant"
rng = np.random.default_rng(20240611)


def weights() -> np.ndarray:
    """Gaussian rows with edge cases planted in whole 32-element blocks."""
    w = rng.normal(0.0, 0.05, size=(ROWS, COLS)).astype(np.float32)
    w[0, 0:32] = 0.0                                   # all-zero block (scale 0)
    w[0, 32:64] = 0.25                                 # constant block
    w[1, 64:96] = rng.normal(0, 40.0, 32)              # large magnitudes
    w[1, 96:128] = rng.normal(0, 1e-5, 32)             # tiny magnitudes
    w[2, 128:160] = np.abs(w[2, 128:160]); w[2, 140] = -1.0   # negative extreme
    w[2, 160:192] = np.abs(w[2, 160:192]); w[2, 170] = 1.0    # positive extreme
    return w


def random_k_blocks(qtype: T, nblocks: int) -> np.ndarray:
    size = quants.GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    d = rng.uniform(1e-4, 2e-3, size=(nblocks, 1)).astype(np.float16).view(np.uint8)
    if qtype == T.Q4_K:      # d, dmin at the front
        dmin = rng.uniform(1e-4, 2e-3, size=(nblocks, 1)).astype(np.float16).view(np.uint8)
        blocks[:, 0:2], blocks[:, 2:4] = d, dmin
    elif qtype == T.Q6_K:    # d at the end
        blocks[:, -2:] = d
    blocks[0] = 0            # one all-zero block
    return blocks


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = []
    for qtype in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q4_K, T.Q6_K]:
        if qtype in (T.Q4_K, T.Q6_K):
            nblocks = ROWS * COLS // 256
            encoded = random_k_blocks(qtype, nblocks).reshape(ROWS, -1)
            source = "random valid blocks + gguf.quants.dequantize"
        else:
            encoded = quants.quantize(weights(), qtype)
            source = "gguf.quants.quantize + gguf.quants.dequantize"
        reference = quants.dequantize(encoded, qtype).astype(np.float32)
        assert reference.shape == (ROWS, COLS)
        name = qtype.name.lower().replace("_k", "_K")
        encoded.tofile(OUT / f"{name}.bin")
        reference.astype("<f4").tofile(OUT / f"{name}.f32")
        index.append({"type": name, "ggmlType": int(qtype), "rows": ROWS, "cols": COLS, "source": source})
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
