import CSparrowSIMD

extension MatMul {
    /// output[c] = sum_i coefficients[i] * W[rows[i], c]: a combination of selected rows, the
    /// transposed form of a product that reads only some input columns (contextual sparsity
    /// keeps a down projection transposed so that a token's live neurons are whole rows).
    /// Q8_0 only (the layout such a copy is made in): blocks are scaled and summed in f32
    /// without dequantising first.
    public func combineRows(_ w: WeightMatrix, rows: UnsafeBufferPointer<Int32>, coefficients: UnsafePointer<Float>,
                            into output: UnsafeMutablePointer<Float>) {
        precondition(w.type == .q8_0, "combineRows: \(w.type.name) rows; only Q8_0 is supported")
        guard !rows.isEmpty else { return output.initialize(repeating: 0, count: w.cols) }
        // Rows split across the pool, each worker summing whole rows (read front to back, as
        // the prefetcher likes: the selected rows are scattered) into its own partial sums.
        let cols = w.cols, workers = pool.threadCount, ahead = 8
        let partials = partialScratch.bytes(workers * cols * 4).assumingMemoryBound(to: Float.self)
        pool.run { worker, count in
            let sums = partials + worker * cols
            sums.initialize(repeating: 0, count: cols)
            let mine = ThreadPool.chunk(worker, of: count, count: rows.count)
            for i in mine {
                // The row `ahead` on is fetched a block per block summed: fetching it whole
                // at once stalls the loop.
                let next = i + ahead < mine.upperBound ? w.row(Int(rows[i + ahead])) : nil
                let c = coefficients[i], row = w.row(Int(rows[i]))
                for b in 0..<(cols / 32) {
                    if let next { sparrow_prefetch(next + b * 34, 34) }
                    let block = row + b * 34, out = sums + b * 32
                    let s = F32x16(repeating: c * block.float16(at: 0))
                    store16(load16(out).addingProduct(s, sparrow_i32x16_to_f32(sparrow_i8x16_to_i32(block.simd(SIMD16<Int8>.self, at: 2)))), out)
                    store16(load16(out + 16).addingProduct(s, sparrow_i32x16_to_f32(sparrow_i8x16_to_i32(block.simd(SIMD16<Int8>.self, at: 18)))), out + 16)
                }
            }
        }
        output.update(from: partials, count: cols)
        for worker in 1..<workers { add(partials + worker * cols, into: output, count: cols) }
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
