import CSparrowSIMD

/// A one-bit sketch of a weight matrix that ranks its rows by their product with an input at
/// a fraction of the bytes: each weight's sign, and per row its mean magnitude m[r]. Row r
/// scores m[r] · Σ_c sign(W[r, c]) · q[c], with q the input quantised to int8 (one scale),
/// which is W[r]·x up to a positive factor shared by every row and the sketch's error. The top
/// few rows by score hold the largest products with high probability; computing only those
/// exactly finds the largest at about an eighth of the bytes of a Q8_0 matrix (a draft model's
/// output projection). One `scores` call at a time per instance (it owns the input scratch).
public final class SignSketch: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// 64-bit words per row; bits past `cols` are zero.
    let words: Int
    /// Row-major, `words` per row: bit c % 64 of word c / 64 is set where W[r, c] > 0.
    private let bits: UnsafeMutablePointer<UInt64>
    private let magnitudes: UnsafeMutablePointer<Float>
    /// The quantised input, zero-padded to whole words.
    private let quantised: UnsafeMutablePointer<Int8>
    public var instructions = DotInstructions.best

    public init(_ w: WeightMatrix, pool: ThreadPool) {
        rows = w.rows
        cols = w.cols
        words = (w.cols + 63) / 64
        bits = .allocate(capacity: rows * words)
        magnitudes = .allocate(capacity: rows)
        quantised = .allocate(capacity: words * 64)
        let (rows, cols, words, bits, magnitudes) = (rows, cols, words, bits, magnitudes)
        pool.parallelFor(rows) { range in
            // Zero-padded to whole words, so that padding neither sets bits nor adds magnitude.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: words * 64) { buffer in
                let row = buffer.baseAddress!
                (row + cols).initialize(repeating: 0, count: words * 64 - cols)
                let powers = SIMD16<Int32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
                for r in range {
                    w.dequantizeRow(r, into: row)
                    var sum = SIMD16<Float>()
                    for word in 0..<words {
                        var set: UInt64 = 0
                        for part in 0..<4 {
                            let v = UnsafeRawPointer(row + 64 * word + 16 * part).loadUnaligned(as: SIMD16<Float>.self)
                            sum += v.replacing(with: -v, where: v .< 0)
                            let bits = SIMD16<Int32>().replacing(with: powers, where: v .> 0)
                            set |= UInt64(UInt32(bitPattern: sparrow_reduce_add_i32x16(bits))) << UInt64(16 * part)
                        }
                        bits[r * words + word] = set
                    }
                    magnitudes[r] = sparrow_reduce_add_f32x16(sum) / Float(cols)
                }
            }
        }
    }

    deinit {
        bits.deallocate()
        magnitudes.deallocate()
        quantised.deallocate()
    }

    /// scores[r] for every row of the sketched matrix against `x` (`cols` floats).
    public func scores(_ x: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        var largest: Float = 0
        for c in 0..<cols { largest = max(largest, abs(x[c])) }
        let inverse: Float = largest > 0 ? 127 / largest : 0
        var total: Int32 = 0
        for c in 0..<words * 64 {
            let q = c < cols ? Int8((x[c] * inverse).rounded()) : 0
            quantised[c] = q
            total += Int32(q)
        }
        // Σ sign · q = (Σ over set bits of q) − (Σ over clear bits of q) = 2 · (Σ over set bits) − Σ q.
        switch instructions {
        case .vnni: rank(VNNIDot.self, total: total, into: scores, pool: pool)
        case .avx2: rank(AVX2Dot.self, total: total, into: scores, pool: pool)
        case .portable: rank(PortableDot.self, total: total, into: scores, pool: pool)
        }
    }

    private func rank<D: Int8DotProduct>(_: D.Type, total: Int32, into scores: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let (words, bits, magnitudes, quantised) = (words, bits, magnitudes, UnsafeRawPointer(quantised))
        pool.parallelFor(rows) { range in
            for r in range {
                var acc = SIMD16<Int32>()
                for word in 0..<words {
                    acc = D.narrowDot(acc, D.bitBytes(bits[r * words + word]), quantised.simd(SIMD64<Int8>.self, at: 64 * word))
                }
                scores[r] = magnitudes[r] * Float(2 &* sparrow_reduce_add_i32x16(acc) &- total)
            }
        }
    }
}
