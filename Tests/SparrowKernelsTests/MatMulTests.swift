import Testing
import SparrowTestSupport
@testable import SparrowKernels

@Suite struct MatMulTests {
    static let types = TensorType.allCases.filter(\.isComputable)

    /// Checks MatMul against a float64 product of the dequantised weights. Quantised types also
    /// quantise the activations to int8 (step d = max|x| / 127 over 32 or 256 elements, error
    /// at most d/2 per element), so |error| <= sum_c |W[r,c]| * d(c)/2, plus float rounding.
    /// That worst case is loose, so the errors' mean square is also checked against the
    /// variance of uniform rounding errors, sum_c W[r,c]^2 * d(c)^2 / 12 (expected ratio ~1).
    @Test(arguments: types, [1, 3, 5, 8, 70])
    func matchesFloat64Reference(_ type: TensorType, tokens: Int) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) &* 1000 &+ UInt64(tokens))
        let rows = 13, cols = type.blockSize == 1 ? 37 : 512
        let bytes = randomEncodedRows(type, rows: rows, cols: cols, using: &rng)
        let weights = dequantized(type, bytes, count: rows * cols)
        var input = (0..<tokens * cols).map { _ in Float.random(in: -2...2, using: &rng) }
        input[3] = 40  // an outlier coarsens its block's activation step
        let pool = ThreadPool(threadCount: 3)
        let output = try multiply(MatMul(pool: pool), type, bytes, rows: rows, cols: cols, input: input, tokens: tokens)

        let group = type.blockSize == 256 ? 256 : 32
        var squaredErrorRatio = 0.0
        for t in 0..<tokens {
            let x = input[(t * cols)..<((t + 1) * cols)].map(Double.init)
            let halfStep: [Double] = type.blockSize == 1 ? Array(repeating: 0, count: cols) : (0..<cols).map { c in
                let start = c / group * group
                return x[start..<(start + group)].map(abs).max()! / 127 / 2
            }
            for r in 0..<rows {
                var exact = 0.0, magnitude = 0.0, bound = 0.0, variance = 0.0
                for c in 0..<cols {
                    let wv = Double(weights[r * cols + c])
                    exact += wv * x[c]
                    magnitude += abs(wv * x[c])
                    bound += abs(wv) * halfStep[c]
                    variance += wv * wv * halfStep[c] * halfStep[c] / 3
                }
                let got = Double(output[t * rows + r])
                if variance > 0 { squaredErrorRatio += (got - exact) * (got - exact) / variance }
                #expect(abs(got - exact) <= bound + 1e-5 * magnitude + 1e-6,
                        "\(type.name) t=\(t) r=\(r): got \(got), want \(exact) ± \(bound)")
            }
        }
        #expect(squaredErrorRatio / Double(rows * tokens) < 2.5, "\(type.name): errors larger than activation rounding explains")
    }

    /// Every instruction set this CPU runs gives the portable kernels' bits (VNNI and AVX2
    /// form the same exact integer lanes), Q8_0's bytes of 128 and more included.
    @Test(.enabled(if: DotInstructions.best != .portable, "this CPU has neither AVX-512 VNNI nor AVX2"),
          arguments: types.filter { $0.blockSize > 1 }, [1, 4, 7, 9])
    func everyInstructionSetEqualsThePortablePath(_ type: TensorType, tokens: Int) throws {
        let available = DotInstructions.allCases.filter { $0 != .portable && $0.isAvailable }
        var rng = SplitMix64(seed: 99 &+ UInt64(type.rawValue))
        let rows = 11, cols = 1024
        let bytes = randomEncodedRows(type, rows: rows, cols: cols, using: &rng)
        let input = (0..<tokens * cols).map { _ in Float.random(in: -3...3, using: &rng) }
        let portable = MatMul(pool: ThreadPool(threadCount: 2))
        portable.instructions = .portable
        for instructions in available {
            let fast = MatMul(pool: ThreadPool(threadCount: 2))
            fast.instructions = instructions
            for order in [SummationOrder.referenceBatch, .singleToken] {
                let a = try multiply(fast, type, bytes, rows: rows, cols: cols, input: input, tokens: tokens, order: order)
                let b = try multiply(portable, type, bytes, rows: rows, cols: cols, input: input, tokens: tokens, order: order)
                #expect(a == b, "\(type.name) \(order) \(instructions)")
            }
        }
    }

    /// Q5_0 re-encoded as Q8_0 (what `PreparedWeights` does for AVX2) holds the same values
    /// and gives the same products, bit for bit, with every instruction set, for one token,
    /// batches in both orders, and selected rows; other instruction sets keep Q5_0 as it is.
    @Test(arguments: [1, 2, 7])
    func preparedQ5_0MultipliesAsTheOriginal(tokens: Int) throws {
        var rng = SplitMix64(seed: 123 &+ UInt64(tokens))
        let rows = 13, cols = 320
        let bytes = randomEncodedRows(.q5_0, rows: rows, cols: cols, using: &rng)
        let input = (0..<tokens * cols).map { _ in Float.random(in: -3...3, using: &rng) }
        try bytes.withUnsafeBytes { raw in
            let original = try WeightMatrix(type: .q5_0, rows: rows, cols: cols, data: raw.baseAddress!)
            for instructions in DotInstructions.allCases where instructions != .avx2 {
                #expect(try PreparedWeights(instructions: instructions).prepare(original) == nil, "\(instructions)")
            }
            let prepared = PreparedWeights(instructions: .avx2)
            let wide = try #require(try prepared.prepare(original))
            #expect(wide.type == .q8_0 && prepared.copiedBytes == wide.byteCount)
            var a = [Float](repeating: 0, count: cols), b = a
            for r in 0..<rows {
                original.dequantizeRow(r, into: &a)
                wide.dequantizeRow(r, into: &b)
                #expect(a == b, "row \(r) values")
            }
            for instructions in DotInstructions.allCases where instructions.isAvailable {
                let matmul = MatMul(pool: ThreadPool(threadCount: 2))
                matmul.instructions = instructions
                for order in [SummationOrder.referenceBatch, .singleToken] {
                    var x = [Float](repeating: .nan, count: tokens * rows), y = x
                    matmul(original, input, tokens: tokens, order: order, into: &x)
                    matmul(wide, input, tokens: tokens, order: order, into: &y)
                    #expect(x == y, "\(instructions) \(order)")
                }
                let selected: [Int32] = [0, 4, 5, 12]
                var x = [Float](repeating: .nan, count: selected.count), y = x
                selected.withUnsafeBufferPointer {
                    matmul.selectedRows(original, input, rows: $0, into: &x)
                    matmul.selectedRows(wide, input, rows: $0, into: &y)
                }
                #expect(x == y, "\(instructions) selected rows")
            }
        }
    }

    /// In the one-token order every batch gives exactly the one-token kernel's bits, whatever
    /// its size (panels of 4, 8 or 16 lanes per row group, partly filled, plus a remainder).
    /// llama.cpp rounds the 32-element formats alike for any batch size, so for those the
    /// reference order must too.
    @Test(arguments: types.filter { $0.blockSize > 1 }, [2, 3, 4, 5, 8, 9, 21])
    func batchedEqualsOneTokenAtATime(_ type: TensorType, tokens: Int) throws {
        var rng = SplitMix64(seed: 7 &+ UInt64(type.rawValue) &* 31 &+ UInt64(tokens))
        let rows = 11, cols = type.blockSize == 256 ? 512 : 320
        let bytes = randomEncodedRows(type, rows: rows, cols: cols, using: &rng)
        let input = (0..<tokens * cols).map { _ in Float.random(in: -3...3, using: &rng) }
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        let orders: [SummationOrder] = type.blockSize == 256 ? [.singleToken] : [.singleToken, .referenceBatch]
        for order in orders {
            let batched = try multiply(matmul, type, bytes, rows: rows, cols: cols, input: input, tokens: tokens, order: order)
            for t in 0..<tokens {
                let single = try multiply(matmul, type, bytes, rows: rows, cols: cols, input: Array(input[(t * cols)..<((t + 1) * cols)]), tokens: 1)
                #expect(Array(batched[(t * rows)..<((t + 1) * rows)]) == single, "\(type.name) \(order) token \(t)")
            }
        }
    }

    /// The panels multiply sub-block sums by their scales in 16 bits, which the formats' ranges
    /// allow with nothing to spare (Q4_K: 16 products of 15 and -128 per lane). Blocks at those
    /// extremes, against activations that quantise to -128 or 127 throughout, still give the
    /// one-token kernels' bits.
    @Test(arguments: [TensorType.q4_K, .q6_K], [4, 8, 16])
    func extremeBlocksStayExactInBatches(_ type: TensorType, tokens: Int) throws {
        let rows = 5, cols = 512
        var block = [UInt8](repeating: 0, count: type.bytesPerBlock)
        let one = Float16(1).bitPattern
        if type == .q4_K {
            // d = dmin = 1, every 6-bit scale and minimum 63, every quant 15.
            block.replaceSubrange(0..<4, with: [UInt8(one & 0xFF), UInt8(one >> 8), UInt8(one & 0xFF), UInt8(one >> 8)])
            for i in 4..<144 { block[i] = 0xFF }
        } else {
            // Every quant 0 (value -32), every scale -128, d = 1.
            for i in 192..<208 { block[i] = 0x80 }
            block.replaceSubrange(208..<210, with: [UInt8(one & 0xFF), UInt8(one >> 8)])
        }
        let bytes = Array([[UInt8]](repeating: block, count: rows * cols / 256).joined())
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        for value: Float in [-1, 1] {
            let input = [Float](repeating: value, count: tokens * cols)
            let batched = try multiply(matmul, type, bytes, rows: rows, cols: cols, input: input, tokens: tokens, order: .singleToken)
            let single = try multiply(matmul, type, bytes, rows: rows, cols: cols, input: Array(input[0..<cols]), tokens: 1)
            for t in 0..<tokens {
                #expect(Array(batched[(t * rows)..<((t + 1) * rows)]) == single, "\(type.name) x=\(value) token \(t)")
            }
        }
    }

    @Test func realGGUFVectorsThroughMatMul() throws {
        // The committed gguf-quantised rows (edge-case blocks included) against their reference floats.
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        for fixture in try QuantFixture.all() {
            let weights = try fixture.reference()
            let input = (0..<fixture.cols).map { Float(($0 * 37) % 19) / 9 - 1 }
            let output = try multiply(matmul, fixture.tensorType, try fixture.encoded(), rows: fixture.rows, cols: fixture.cols, input: input, tokens: 1)
            for r in 0..<fixture.rows {
                let row = weights[(r * fixture.cols)..<((r + 1) * fixture.cols)]
                let exact = zip(row, input).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let absSum = row.reduce(0.0) { $0 + abs(Double($1)) }
                // |x| <= 1, so the activation half-step is at most 1/254.
                #expect(abs(Double(output[r]) - exact) <= absSum / 254 + 1e-5 * absSum, "\(fixture.type) row \(r)")
            }
        }
    }

    @Test func zeroTokensOrRowsWriteNothing() throws {
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        let out = try multiply(matmul, .q8_0, [UInt8](repeating: 0, count: 34), rows: 1, cols: 32, input: [], tokens: 0)
        #expect(out.isEmpty)
    }
}
