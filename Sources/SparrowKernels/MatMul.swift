import CSparrowSIMD

/// Matrix multiply against quantised weights; owns reusable scratch for quantised activations
/// (no allocation per call once warmed up). One call at a time per instance.
///
/// Quantised weights are never dequantised: the activations are quantised once per call (Q8
/// blocks of 32, or Q8_K super-blocks for the K-quants) and each output is an integer dot
/// product of weight blocks with activation blocks. Work is split by rows across the pool; for
/// several tokens each small tile of weight rows is reused from L1 across a chunk of tokens.
public final class MatMul: @unchecked Sendable {
    public let pool: ThreadPool
    /// The instructions the quantised kernels use (tests force each available one).
    public internal(set) var instructions = DotInstructions.best

    private let scratch = ScratchBuffer(), offsetScratch = ScratchBuffer(), panelScratch = ScratchBuffer(), rowScratch = ScratchBuffer()
    /// Per-worker sums of `selectedColumns`, and its column pairs.
    let partialScratch = ScratchBuffer(), columnPairScratch = ScratchBuffer()

    /// Rows whose encoded bytes stay in L1 while a chunk of tokens streams past them.
    private static let rowTile = 8
    /// Tokens whose quantised activations stay in L2 while a row tile is reused.
    private static let tokenTile = 64
    /// Panel bytes that stay in L2 while unpacked weight rows meet them.
    private static let panelChunkBytes = 384 << 10
    /// Row pairs ahead of the panel kernels that are prefetched.
    private static let pairsAhead = 4

    public init(pool: ThreadPool) { self.pool = pool }

    /// output[t*w.rows + r] = sum_c W[r, c] * input[t*w.cols + c]   for t in 0..<tokens.
    /// tokens == 1 is decode (GEMV); tokens > 1 is a batch, summed in `order`.
    public func callAsFunction(_ w: WeightMatrix, _ input: UnsafePointer<Float>, tokens: Int, order: SummationOrder = .referenceBatch,
                               into output: UnsafeMutablePointer<Float>) {
        precondition(tokens >= 0, "MatMul: negative token count \(tokens)")
        guard tokens > 0, w.rows > 0 else { return }
        multiply(w, input, tokens: tokens, order: order, selected: nil, into: output)
    }

    /// output[i] = sum_c W[rows[i], c] * input[c] for one token: only the selected rows' bytes
    /// are read (contextual sparsity). Sums as the one-token product does.
    public func selectedRows(_ w: WeightMatrix, _ input: UnsafePointer<Float>, rows: UnsafeBufferPointer<Int32>,
                             into output: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        multiply(w, input, tokens: 1, order: .singleToken, selected: rows, into: output)
    }

    private func multiply(_ w: WeightMatrix, _ input: UnsafePointer<Float>, tokens: Int, order: SummationOrder,
                          selected: UnsafeBufferPointer<Int32>?, into output: UnsafeMutablePointer<Float>) {
        switch instructions {
        case .vnni: multiply(w, input, tokens: tokens, order: order, selected: selected, into: output, QuantDot<VNNIDot>.self)
        case .avx2: multiply(w, input, tokens: tokens, order: order, selected: selected, into: output, QuantDot<AVX2Dot>.self)
        case .portable: multiply(w, input, tokens: tokens, order: order, selected: selected, into: output, QuantDot<PortableDot>.self)
        }
    }

    private func multiply<D>(_ w: WeightMatrix, _ input: UnsafePointer<Float>, tokens: Int, order: SummationOrder,
                             selected: UnsafeBufferPointer<Int32>?, into output: UnsafeMutablePointer<Float>, _: QuantDot<D>.Type) {
        let cols = w.cols
        switch w.type {
        case .f32, .f16, .bf16:
            let type = w.type
            guard let selected else { return tiled(w, 0..<tokens, output) { FloatDot.dot(type, $0, input + $1 * cols, count: cols) } }
            rows(w, selected, output) { FloatDot.dot(type, $0, input, count: cols) }
        case .q8_0, .q4_0, .q4_1, .q5_0:
            // llama.cpp sums these formats alike for any batch size, so both orders are one.
            let x = quantizeQ8(input, tokens: tokens, cols: cols)
            let blocks = cols / 32
            func run<F: Q8BlockFormat>(_ format: F.Type) {
                guard tokens > 2 else {
                    let offsetSums = offsetScratch.bytes(tokens * blocks * 32).assumingMemoryBound(to: SIMD8<Int32>.self)
                    if F.offset != 0 {
                        for i in 0..<tokens * blocks {
                            offsetSums[i] = D.dot(.zero, SIMD32(repeating: F.offset), UnsafeRawPointer(x.quants + 32 * i).simd(SIMD32<Int8>.self))
                        }
                    }
                    // The second token's row is only read with two tokens.
                    let rows = (Q8Row(quants: x.quants, scales: x.scales, offsetSums: offsetSums),
                                Q8Row(quants: x.quants + cols, scales: x.scales + blocks, offsetSums: offsetSums + blocks))
                    func quads<T: RowTokens>(_ tokens: T.Type) {
                        rowQuads(w, selected, output, tokens) { QuantDot<D>.q8BlockQuad($0, rows, blocks: blocks, prefetching: $1, format, tokens) }
                    }
                    return tokens == 1 ? quads(OneToken.self) : quads(TwoTokens.self)
                }
                let panels = buildPanels(cols: cols, tokens: tokens) { buildQ8Panel($0, $1, x, first: $2, tokens: tokens) }
                panelTiled(w, panels.layout, tokens: tokens, output, Q8BlockPanels<F, D>(panels: panels, blocks: blocks))
            }
            switch w.type {
            case .q8_0: run(Q8_0Format.self)
            case .q4_0: run(Q4_0Format.self)
            case .q4_1: run(Q4_1Format.self)
            default: run(Q5_0Format.self)
            }
        case .q4_K, .q6_K:
            let x = quantizeQ8K(input, tokens: tokens, cols: cols)
            let blocks = cols / 256
            func row(_ t: Int) -> Q8KRow {
                Q8KRow(quants: x.quants + t * cols, scales: x.scales + t * blocks, groupSums: x.groupSums + t * cols / 16,
                       offsetSums: offsetSums + t * cols / 4)
            }
            // In the reference order, llama.cpp's summation schedule depends on the batch size
            // (see QuantDot); it is followed so that logits stay bit-identical to the reference.
            // Q4_K: tokens in full groups of four go through its repacked gemm (panels here),
            // the rest (and batches of up to three) through its gemv. Q6_K: its tiled matmul
            // (panels) from 8 tokens. In the one-token order, batches of three or more go through
            // panels that sum as the one-token kernels do, and two tokens through the one-token
            // kernels themselves (each row read once for both: measured faster than a panel
            // half of whose lanes would be padding).
            let isQ4K = w.type == .q4_K
            let panelTokens = switch order {
            case .singleToken: tokens > 2 ? tokens : 0
            case .referenceBatch: isQ4K ? (tokens > 3 ? tokens - tokens % 4 : 0) : (tokens >= 8 ? tokens : 0)
            }
            let offsetSums = offsetScratch.bytes(tokens * cols).assumingMemoryBound(to: Int32.self)
            if !isQ4K && panelTokens < tokens {
                for i in 0..<tokens * cols / 64 {
                    let sums = D.dot(.zero, SIMD64(repeating: 32), UnsafeRawPointer(x.quants + 64 * i).simd(SIMD64<Int8>.self))
                    UnsafeMutableRawPointer(offsetSums + 16 * i).storeBytes(of: sums &* -1, as: SIMD16<Int32>.self)
                }
            }
            if panelTokens > 0 {
                let panels = buildPanels(cols: cols, tokens: panelTokens) { buildQ8KPanel($0, $1, x, first: $2, tokens: panelTokens) }
                if isQ4K {
                    panelTiled(w, panels.layout, tokens: panelTokens, output, Q4KPanels<D>(panels: panels, blocks: blocks, order: order))
                } else {
                    panelTiled(w, panels.layout, tokens: panelTokens, output, Q6KPanels<D>(panels: panels, blocks: blocks, order: order))
                }
            }
            if let selected {
                if isQ4K {
                    rows(w, selected, output) { QuantDot<D>.q4_K($0, row(0), blocks: blocks) }
                } else {
                    rows(w, selected, output) { QuantDot<D>.q6_K($0, row(0), blocks: blocks) }
                }
            } else if panelTokens < tokens {
                if isQ4K {
                    tiled(w, panelTokens..<tokens, output) { QuantDot<D>.q4_K($0, row($1), blocks: blocks) }
                } else {
                    tiled(w, panelTokens..<tokens, output) { QuantDot<D>.q6_K($0, row($1), blocks: blocks) }
                }
            }
        default:
            preconditionFailure("unreachable: WeightMatrix only holds computable types")
        }
    }

    /// Fills output[t*rows + r] = kernel(row r's bytes, t) for t in `tokens`, rows split across the pool.
    @inline(__always)
    private func tiled(_ w: WeightMatrix, _ tokens: Range<Int>, _ output: UnsafeMutablePointer<Float>, _ kernel: (UnsafeRawPointer, Int) -> Float) {
        let rows = w.rows
        pool.parallelFor(rows) { range in
            for t0 in stride(from: tokens.lowerBound, to: tokens.upperBound, by: Self.tokenTile) {
                let tEnd = min(tokens.upperBound, t0 + Self.tokenTile)
                for r0 in stride(from: range.lowerBound, to: range.upperBound, by: Self.rowTile) {
                    for r in r0..<min(range.upperBound, r0 + Self.rowTile) {
                        let weights = w.row(r)
                        for t in t0..<tEnd { output[t * rows + r] = kernel(weights, t) }
                    }
                }
            }
        }
    }

    /// Fills output[i] = kernel(row selected[i]'s bytes), the selection split across the pool.
    @inline(__always)
    private func rows(_ w: WeightMatrix, _ selected: UnsafeBufferPointer<Int32>, _ output: UnsafeMutablePointer<Float>,
                      _ kernel: (UnsafeRawPointer) -> Float) {
        let ahead = 8, rowBytes = w.rowBytes
        pool.parallelFor(selected.count) { range in
            for i in range {
                if i + ahead < range.upperBound { sparrow_prefetch(w.row(Int(selected[i + ahead])), rowBytes) }
                output[i] = kernel(w.row(Int(selected[i])))
            }
        }
    }

    /// One or two tokens: fills output[t * count + i] = the sum of row i (or of row selected[i])
    /// for token t, by a kernel that sums four rows at a time, the quads split across the pool
    /// (a short last quad repeats its last row).
    @inline(__always)
    private func rowQuads<T: RowTokens>(_ w: WeightMatrix, _ selected: UnsafeBufferPointer<Int32>?, _ output: UnsafeMutablePointer<Float>, _: T.Type,
                                        _ kernel: (Quad<UnsafeRawPointer>, QuadPrefetch?) -> (SIMD4<Float>, SIMD4<Float>)) {
        let count = selected?.count ?? w.rows, ahead = selected == nil ? 8 : 16
        @inline(__always) func row(_ i: Int) -> UnsafeRawPointer { w.row(selected.map { Int($0[i]) } ?? i) }
        pool.parallelFor((count + 3) / 4) { quads in
            for quad in quads {
                let i = 4 * quad, last = count - 1
                // The kernel fetches the rows `ahead` on a little per block: fetching four whole
                // rows at once stalls it, and scattered rows (contextual sparsity) are beyond
                // the hardware prefetcher (they need the longer lead: measured, 16 rows beat 8).
                let j = i + ahead
                let next = j + 3 < count ? QuadPrefetch(rows: (row(j), row(j + 1), row(j + 2), row(j + 3)), contiguous: selected == nil) : nil
                let index = (i, min(i + 1, last), min(i + 2, last), min(i + 3, last))
                let sums = kernel((row(index.0), row(index.1), row(index.2), row(index.3)), next)
                @inline(__always) func store(_ sum: SIMD4<Float>, _ out: UnsafeMutablePointer<Float>) {
                    out[index.3] = sum[3]
                    out[index.2] = sum[2]
                    out[index.1] = sum[1]
                    out[index.0] = sum[0]
                }
                store(sums.0, output)
                if T.count > 1 { store(sums.1, output + count) }
            }
        }
    }

    /// The panels of `tokens` in the reusable scratch, each filled by `build(memory, layout, first token)`.
    private func buildPanels(cols: Int, tokens: Int, _ build: (UnsafeMutableRawPointer, PanelLayout, Int) -> Void) -> PanelSource {
        let layout = PanelLayout(cols: cols, tokens: tokens)
        let memory = panelScratch.bytes(layout.byteCount)
        pool.parallelFor(layout.panelCount) { panels in
            for p in panels { build(memory, layout, p * layout.tokensPerPanel) }
        }
        return PanelSource(layout: layout, memory: memory)
    }

    private func panelTiled<K: PanelKernel>(_ w: WeightMatrix, _ layout: PanelLayout, tokens: Int, _ output: UnsafeMutablePointer<Float>, _ kernel: K) {
        switch layout.lanesPerToken {
        case 4: panelTiled(w, layout, tokens: tokens, output, kernel, FourLanes.self)
        case 2: panelTiled(w, layout, tokens: tokens, output, kernel, TwoLanes.self)
        default: panelTiled(w, layout, tokens: tokens, output, kernel, OneLane.self)
        }
    }

    /// Fills output[t*rows + r] for t < tokens from token panels: rows split across the pool
    /// in pairs (an odd last row is paired with itself); each pair is unpacked once per chunk
    /// of panels that fits in L2, then meets each panel.
    @inline(__always)
    private func panelTiled<K: PanelKernel, L: PanelLanes>(_ w: WeightMatrix, _ layout: PanelLayout, tokens: Int,
                                                           _ output: UnsafeMutablePointer<Float>, _ kernel: K, _: L.Type) {
        let rows = w.rows, unpackedBytes = kernel.unpackedBytes
        let chunk = max(1, Self.panelChunkBytes / layout.panelBytes)
        let unpackedRows = rowScratch.bytes(pool.threadCount * 2 * unpackedBytes)
        pool.run { worker, workers in
            let pairs = ThreadPool.chunk(worker, of: workers, count: (rows + 1) / 2)
            let first = unpackedRows + worker * 2 * unpackedBytes, second = first + unpackedBytes
            for p0 in stride(from: 0, to: layout.panelCount, by: chunk) {
                for pair in pairs {
                    let r0 = 2 * pair, r1 = min(r0 + 1, rows - 1)
                    let weights = (w.row(r0), w.row(r1))
                    // The panels' sums are compute-bound: the first panel's kernel fetches the
                    // rows a few pairs ahead meanwhile.
                    let ahead = 2 * (pair + Self.pairsAhead)
                    let next = ahead + 1 < rows ? (w.row(ahead), w.row(ahead + 1)) : nil
                    kernel.unpack(weights.0, into: first)
                    kernel.unpack(weights.1, into: second)
                    for p in p0..<min(layout.panelCount, p0 + chunk) {
                        let sums = kernel.sums(weights, (UnsafeRawPointer(first), UnsafeRawPointer(second)), panel: p, prefetching: p == p0 ? next : nil, L.self)
                        let t0 = p * layout.tokensPerPanel
                        for i in 0..<min(layout.tokensPerPanel, tokens - t0) {
                            output[(t0 + i) * rows + r0] = sums.0[L.perToken * i]
                            output[(t0 + i) * rows + r1] = sums.1[L.perToken * i]
                        }
                    }
                }
            }
        }
    }

    /// Fills one Q8 panel from row-major quantised activations.
    private func buildQ8Panel(_ memory: UnsafeMutableRawPointer, _ layout: PanelLayout, _ x: (quants: UnsafePointer<Int8>, scales: UnsafePointer<SIMD2<Float>>),
                              first: Int, tokens: Int) {
        let panel = layout.q8(memory, first / layout.tokensPerPanel)
        let count = min(layout.tokensPerPanel, tokens - first), blocks = layout.cols / 32
        // Padding lanes hold 0 rather than 128; their outputs are never stored.
        layout.transpose(x.quants, first: first, count: count, flip: 0x8080_8080, into: panel.quants)
        layout.fillColumns(panel.scales, perToken: blocks, count: count) { x.scales[(first + $0) * blocks + $1].x }
        layout.fillColumns(panel.sums, perToken: blocks, count: count) { x.scales[(first + $0) * blocks + $1].y }
    }

    /// Fills one Q8_K panel from row-major quantised activations.
    private func buildQ8KPanel(_ memory: UnsafeMutableRawPointer, _ layout: PanelLayout, _ x: (quants: UnsafePointer<Int8>, scales: UnsafePointer<Float>, groupSums: UnsafePointer<Int16>),
                               first: Int, tokens: Int) {
        let panel = layout.q8K(memory, first / layout.tokensPerPanel)
        let count = min(layout.tokensPerPanel, tokens - first), blocks = layout.cols / 256, groups = layout.cols / 16
        layout.transpose(x.quants, first: first, count: count, into: panel.quants)
        layout.fillColumns(panel.scales, perToken: blocks, count: count) { x.scales[(first + $0) * blocks + $1] }
        layout.fillColumns(panel.groupSums, perToken: groups, count: count) { Int32(x.groupSums[(first + $0) * groups + $1]) }
    }

    // MARK: activation quantisation into the reusable scratch

    private func quantizeQ8(_ input: UnsafePointer<Float>, tokens: Int, cols: Int) -> (quants: UnsafePointer<Int8>, scales: UnsafePointer<SIMD2<Float>>) {
        let quantBytes = Self.aligned(tokens * cols)
        let base = scratch.bytes(quantBytes + tokens * cols / 32 * MemoryLayout<SIMD2<Float>>.stride)
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
        let base = scratch.bytes(quantBytes + scaleBytes + tokens * cols / 16 * 2)
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
}

/// A growable buffer reused across calls (64-byte aligned); contents are not kept on growth.
final class ScratchBuffer {
    private var memory: UnsafeMutableRawPointer?
    private var capacity = 0

    deinit { memory?.deallocate() }

    func bytes(_ count: Int) -> UnsafeMutableRawPointer {
        if let memory, capacity >= count { return memory }
        memory?.deallocate()
        capacity = max(count, capacity * 2)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        memory = fresh
        return fresh
    }
}
