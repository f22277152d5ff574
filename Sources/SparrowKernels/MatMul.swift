/// Matrix multiply against quantised weights; owns reusable scratch for quantised activations
/// (no allocation per call once warmed up). One call at a time per instance.
///
/// Quantised weights are never dequantised: the activations are quantised once per call (Q8
/// blocks of 32, or Q8_K super-blocks for the K-quants) and each output is an integer dot
/// product of weight blocks with activation blocks. Work is split by rows across the pool; for
/// several tokens each small tile of weight rows is reused from L1 across a chunk of tokens.
public final class MatMul: @unchecked Sendable {
    public let pool: ThreadPool
    /// Whether the AVX-512 VNNI kernels are used (else the portable ones). Tests force `false`.
    public internal(set) var usesVNNI: Bool = cpuHasVNNI

    private var scratch: UnsafeMutableRawPointer?
    private var scratchBytes = 0

    /// Rows whose encoded bytes stay in L1 while a chunk of tokens streams past them.
    private static let rowTile = 8
    /// Tokens whose quantised activations stay in L2 while a row tile is reused.
    private static let tokenTile = 64

    public init(pool: ThreadPool) { self.pool = pool }

    deinit { scratch?.deallocate() }

    /// output[t*w.rows + r] = sum_c W[r, c] * input[t*w.cols + c]   for t in 0..<tokens.
    /// tokens == 1 is decode (GEMV); tokens > 1 is batched prefill.
    public func callAsFunction(_ w: WeightMatrix, _ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>) {
        precondition(tokens >= 0, "MatMul: negative token count \(tokens)")
        guard tokens > 0, w.rows > 0 else { return }
        if usesVNNI {
            multiply(w, input, tokens: tokens, into: output, QuantDot<VNNIDot>.self)
        } else {
            multiply(w, input, tokens: tokens, into: output, QuantDot<PortableDot>.self)
        }
    }

    private func multiply<D>(_ w: WeightMatrix, _ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>, _: QuantDot<D>.Type) {
        let cols = w.cols
        switch w.type {
        case .f32, .f16, .bf16:
            let type = w.type
            tiled(w, tokens, output) { FloatDot.dot(type, $0, input + $1 * cols, count: cols) }
        case .q8_0, .q4_0, .q4_1, .q5_0:
            let x = quantizeQ8(input, tokens: tokens, cols: cols)
            let blocks = cols / 32
            func row(_ t: Int) -> Q8Row { Q8Row(quants: x.quants + t * cols, scales: x.scales + t * blocks) }
            switch w.type {
            case .q8_0: tiled(w, tokens, output) { QuantDot<D>.q8_0($0, row($1), blocks: blocks) }
            case .q4_0: tiled(w, tokens, output) { QuantDot<D>.q4_0($0, row($1), blocks: blocks) }
            case .q4_1: tiled(w, tokens, output) { QuantDot<D>.q4_1($0, row($1), blocks: blocks) }
            default: tiled(w, tokens, output) { QuantDot<D>.q5_0($0, row($1), blocks: blocks) }
            }
        case .q4_K, .q6_K:
            let x = quantizeQ8K(input, tokens: tokens, cols: cols)
            let blocks = cols / 256
            func row(_ t: Int) -> Q8KRow {
                Q8KRow(quants: x.quants + t * cols, scales: x.scales + t * blocks, groupSums: x.groupSums + t * cols / 16)
            }
            // llama.cpp's summation schedule depends on the batch size (see QuantDot); it is
            // followed so that logits stay bit-identical to the reference.
            if w.type == .q4_K {
                // Rows in full groups of four go through llama.cpp's repacked gemm, the rest
                // (and batches of up to three) through its gemv.
                let grouped = tokens > 3 ? tokens - tokens % 4 : 0
                tiled(w, tokens, output) { QuantDot<D>.q4_K($0, row($1), blocks: blocks, pairwise: $1 < grouped) }
            } else if tokens >= 8 {
                tiled(w, tokens, output) { QuantDot<D>.q6KTiled($0, row($1), blocks: blocks) }
            } else {
                tiled(w, tokens, output) { QuantDot<D>.q6_K($0, row($1), blocks: blocks) }
            }
        default:
            preconditionFailure("unreachable: WeightMatrix only holds computable types")
        }
    }

    /// Fills output[t*rows + r] = kernel(row r's bytes, t), rows split across the pool.
    @inline(__always)
    private func tiled(_ w: WeightMatrix, _ tokens: Int, _ output: UnsafeMutablePointer<Float>, _ kernel: (UnsafeRawPointer, Int) -> Float) {
        let rows = w.rows
        pool.parallelFor(rows) { range in
            for t0 in stride(from: 0, to: tokens, by: Self.tokenTile) {
                let tEnd = min(tokens, t0 + Self.tokenTile)
                for r0 in stride(from: range.lowerBound, to: range.upperBound, by: Self.rowTile) {
                    for r in r0..<min(range.upperBound, r0 + Self.rowTile) {
                        let weights = w.row(r)
                        for t in t0..<tEnd { output[t * rows + r] = kernel(weights, t) }
                    }
                }
            }
        }
    }

    // MARK: activation quantisation into the reusable scratch

    private func quantizeQ8(_ input: UnsafePointer<Float>, tokens: Int, cols: Int) -> (quants: UnsafePointer<Int8>, scales: UnsafePointer<SIMD2<Float>>) {
        let quantBytes = Self.aligned(tokens * cols)
        let base = scratch(bytes: quantBytes + tokens * cols / 32 * MemoryLayout<SIMD2<Float>>.stride)
        let quants = base.assumingMemoryBound(to: Int8.self)
        let scales = (base + quantBytes).assumingMemoryBound(to: SIMD2<Float>.self)
        forEachToken(tokens) { t in
            SparrowKernels.quantizeQ8(input + t * cols, count: cols, quants: quants + t * cols, scales: scales + t * cols / 32)
        }
        return (UnsafePointer(quants), UnsafePointer(scales))
    }

    private func quantizeQ8K(_ input: UnsafePointer<Float>, tokens: Int, cols: Int) -> (quants: UnsafePointer<Int8>, scales: UnsafePointer<Float>, groupSums: UnsafePointer<Int16>) {
        let quantBytes = Self.aligned(tokens * cols)
        let scaleBytes = Self.aligned(tokens * cols / 256 * 4)
        let base = scratch(bytes: quantBytes + scaleBytes + tokens * cols / 16 * 2)
        let quants = base.assumingMemoryBound(to: Int8.self)
        let scales = (base + quantBytes).assumingMemoryBound(to: Float.self)
        let groupSums = (base + quantBytes + scaleBytes).assumingMemoryBound(to: Int16.self)
        forEachToken(tokens) { t in
            SparrowKernels.quantizeQ8K(input + t * cols, count: cols, quants: quants + t * cols,
                                       scales: scales + t * cols / 256, groupSums: groupSums + t * cols / 16)
        }
        return (UnsafePointer(quants), UnsafePointer(scales), UnsafePointer(groupSums))
    }

    /// A single token is quantised on the caller (waking the pool would cost more).
    @inline(__always)
    private func forEachToken(_ tokens: Int, _ body: (Int) -> Void) {
        if tokens == 1 { return body(0) }
        pool.parallelFor(tokens) { range in for t in range { body(t) } }
    }

    private static func aligned(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

    private func scratch(bytes: Int) -> UnsafeMutableRawPointer {
        if let scratch, scratchBytes >= bytes { return scratch }
        scratch?.deallocate()
        let grown = max(bytes, scratchBytes * 2)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 64)
        scratch = fresh
        scratchBytes = grown
        return fresh
    }
}
