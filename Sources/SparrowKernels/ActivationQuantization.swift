import CSparrowSIMD

// Activations are quantised once per matmul to int8 so every weight block is consumed by an
// integer dot product. Two layouts, matching the weight families:
// - Q8 blocks of 32 (for Q8_0, Q4_0, Q4_1, Q5_0): per block the scale d and ggml's q8_1 sum
//   f16(d * sum(q)), with which Q4_1's minimums are applied without touching each element.
// - Q8_K super-blocks of 256 (for Q4_K, Q6_K): one scale per 256 and int16 sums per 16.

/// One token's activations as Q8 blocks of 32.
struct Q8Row {
    let quants: UnsafePointer<Int8>
    /// Per block: (d, f16(d * sum of the block's quants)), the latter for Q4_1's minimums.
    let scales: UnsafePointer<SIMD2<Float>>
    /// Per block, for weights stored with an offset: offset * (sum of each 4 quants), the
    /// integer every weight row's dot product subtracts (computed once per token, not per row).
    let offsetSums: UnsafePointer<SIMD8<Int32>>
}

/// One token's activations as Q8_K super-blocks of 256.
struct Q8KRow {
    let quants: UnsafePointer<Int8>
    /// Per super-block scale.
    let scales: UnsafePointer<Float>
    /// Sum of the quants of each 16-element group.
    let groupSums: UnsafePointer<Int16>
    /// For Q6_K's offset weights: -32 * (sum of each 4 quants), one int32 per 4 elements.
    let offsetSums: UnsafePointer<Int32>
}

/// Quantises `count` floats (a multiple of 32) to Q8 blocks: q = round(x * 127 / max|x|), with
/// the scale d = max|x| / 127 rounded to f16 as ggml stores it.
func quantizeQ8(_ x: UnsafePointer<Float>, count: Int, quants: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<SIMD2<Float>>) {
    for b in 0..<count / 32 {
        let src = UnsafeRawPointer(x + 32 * b), dst = UnsafeMutableRawPointer(quants + 32 * b)
        let v0 = src.simd(SIMD16<Float>.self), v1 = src.simd(SIMD16<Float>.self, at: 64)
        let amax = sparrow_max_abs_f32x16x2(v0, v1)
        let inverse: Float = amax == 0 ? 0 : 127 / amax
        let q0 = sparrow_round_to_i32(v0 * inverse), q1 = sparrow_round_to_i32(v1 * inverse)
        dst.storeBytes(of: sparrow_i32x16_to_i8(q0), as: SIMD16<Int8>.self)
        dst.storeBytes(of: sparrow_i32x16_to_i8(q1), toByteOffset: 16, as: SIMD16<Int8>.self)
        // ggml keeps the block scale as f16; rounding it the same way keeps logits closest to
        // llama.cpp's (the golden reference), at no cost in accuracy that matters.
        let d = Float(Float16(amax / 127)), total = Float(sparrow_reduce_add_i32x16(q0 &+ q1))
        // The sum is ggml's block_q8_1 s: f16(unrounded d * sum(q)), which Q4_1's minimum multiplies.
        scales[b] = SIMD2(d, Float(Float16(amax / 127 * total)))
    }
}

/// Quantises `count` floats (a multiple of 256) to Q8_K super-blocks: the element of largest
/// magnitude maps to -127 (as ggml does), the rest round to nearest, clamped to 127.
func quantizeQ8K(_ x: UnsafePointer<Float>, count: Int, quants: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>, groupSums: UnsafeMutablePointer<Int16>) {
    for b in 0..<count / 256 {
        let src = UnsafeRawPointer(x + 256 * b)
        var high = src.simd(SIMD16<Float>.self), low = high
        for g in 1..<16 {
            let v = src.simd(SIMD16<Float>.self, at: 64 * g)
            high = sparrow_max_f32x16(high, v)
            low = sparrow_min_f32x16(low, v)
        }
        let highest = sparrow_reduce_max_f32x16(high), lowest = sparrow_reduce_min_f32x16(low)
        var largest = -lowest > highest ? lowest : highest
        if -lowest == highest {
            // Both signs reach the largest magnitude: ggml keeps the one that comes first.
            let p = x + 256 * b
            largest = (0..<256).lazy.map { p[$0] }.first { abs($0) == highest } ?? highest
        }
        let inverse: Float = largest == 0 ? 0 : -127 / largest
        scales[b] = largest == 0 ? 0 : 1 / inverse
        for g in 0..<16 {
            let q = sparrow_min_i32x16(sparrow_round_to_i32(src.simd(SIMD16<Float>.self, at: 64 * g) * inverse), SIMD16(repeating: 127))
            UnsafeMutableRawPointer(quants + 256 * b + 16 * g).storeBytes(of: sparrow_i32x16_to_i8(q), as: SIMD16<Int8>.self)
            groupSums[16 * b + g] = Int16(sparrow_reduce_add_i32x16(q))
        }
    }
}
