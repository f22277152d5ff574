import CSparrowSIMD

extension MatMul {
    /// output[c] = sum_i coefficients[i] * W[rows[i], c]: a combination of selected rows, the
    /// transposed form of a product that reads only some input columns (contextual sparsity
    /// keeps a down projection transposed so that a token's live neurons are whole rows).
    /// Q8_0 only (the layout such a copy is made in): blocks are scaled and summed in f32
    /// without dequantising first. Columns are split across the pool.
    public func combineRows(_ w: WeightMatrix, rows: UnsafeBufferPointer<Int32>, coefficients: UnsafePointer<Float>,
                            into output: UnsafeMutablePointer<Float>) {
        precondition(w.type == .q8_0, "combineRows: \(w.type.name) rows; only Q8_0 is supported")
        guard !rows.isEmpty else { return output.initialize(repeating: 0, count: w.cols) }
        pool.parallelFor(w.cols / 32) { blocks in
            // Four blocks' sums stay in registers while every selected row passes (the rows'
            // bytes are re-read from cache for the next four, not the sums from memory).
            for b0 in stride(from: blocks.lowerBound, to: blocks.upperBound, by: 4) {
                let width = min(4, blocks.upperBound - b0)
                var sums = (F32x16(), F32x16(), F32x16(), F32x16(), F32x16(), F32x16(), F32x16(), F32x16())
                for (i, r) in rows.enumerated() {
                    let c = coefficients[i], first = w.row(Int(r)) + b0 * 34
                    @inline(__always) func add(_ k: Int, _ low: inout F32x16, _ high: inout F32x16) {
                        let block = first + k * 34, s = F32x16(repeating: c * block.float16(at: 0))
                        low = low.addingProduct(s, sparrow_i32x16_to_f32(sparrow_i8x16_to_i32(block.simd(SIMD16<Int8>.self, at: 2))))
                        high = high.addingProduct(s, sparrow_i32x16_to_f32(sparrow_i8x16_to_i32(block.simd(SIMD16<Int8>.self, at: 18))))
                    }
                    add(0, &sums.0, &sums.1)
                    if width > 1 { add(1, &sums.2, &sums.3) }
                    if width > 2 { add(2, &sums.4, &sums.5) }
                    if width > 3 { add(3, &sums.6, &sums.7) }
                }
                let out = output + b0 * 32
                let all = [sums.0, sums.1, sums.2, sums.3, sums.4, sums.5, sums.6, sums.7]
                for k in 0..<(2 * width) { store16(all[k], out + 16 * k) }
            }
        }
    }
}

/// Encodes `count` floats (a multiple of 32) as GGML Q8_0 blocks at `dst`: per block an f16
/// scale max|x|/127 and 32 rounded int8s, as the reference quantiser does.
public func quantizeQ8_0(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
    precondition(count % 32 == 0, "quantizeQ8_0: \(count) is not a multiple of 32")
    for b in 0..<count / 32 {
        let block = dst + b * 34, v = x + b * 32
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(v[j])) }
        let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
        block.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
        for j in 0..<32 { block.storeBytes(of: Int8((v[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self) }
    }
}
