import ArgumentParser
import Foundation
import SparrowGGUF
import SparrowKernels

/// Micro-benchmark of the matmul kernels on a real model's weights: every distinct (type,
/// shape) of its 2-D tensors, as one decode step (1 token, memory-bound: weight GB/s) and as a
/// prefill batch (compute-bound: int8 GOP/s). Medians over repetitions.
@main
struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparrow-kernel-bench",
        abstract: "Time the matmul kernels on the weight matrices of a GGUF file."
    )

    @Option(name: [.customShort("m"), .long], help: "Path of a GGUF file.")
    var model: String

    @Option(name: [.customShort("p"), .long], help: "Tokens in the prefill batch.")
    var batch = 512

    @Option(name: [.customShort("r"), .long], help: "Repetitions (the median is reported).")
    var repetitions = 5

    @Option(name: [.customShort("t"), .long], help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Cached positions the attention timings attend over.")
    var context = 1024

    @Flag(help: "Sum batches in the one-token order, as speculative verification does (default: llama.cpp's batch order, as prefill does).")
    var singleTokenOrder = false

    @Flag(help: "Time only attention, not the weight matrices.")
    var attentionOnly = false

    @Option(help: "Also time contextual sparsity's kernels keeping this fraction of each layer's feed-forward neurons.")
    var keep: Double?

    func validate() throws {
        if batch < 2 { throw ValidationError("--batch must be at least 2") }
        if context < 1 { throw ValidationError("--context must be at least 1") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let keep, !(keep > 0 && keep <= 1) { throw ValidationError("--keep must be in (0, 1]") }
    }

    func run() throws {
        let file = try GGUFFile(path: model)
        let pool = ThreadPool(threadCount: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        if !attentionOnly {
            try timeMatrices(file, pool: pool)
            if let keep { try timeSparseFeedForward(file, pool: pool, keep: keep) }
        }
        timeAttention(file, pool: pool)
    }

    /// Contextual sparsity's kernels against the dense products they replace, every layer in
    /// turn (so that weights come from memory, as in a decode step): the selected rows of each
    /// gate, and the selected columns of down's int8 column copy, against dense gate and down. Each layer keeps a different random, ascending selection.
    private func timeSparseFeedForward(_ file: GGUFFile, pool: ThreadPool, keep: Double) throws {
        func layers(_ suffix: String) throws -> [WeightMatrix] {
            try file.tensors.filter { $0.name.hasSuffix(suffix) && $0.type.isComputable }.map {
                try WeightMatrix(type: $0.type, rows: $0.shape[1], cols: $0.shape[0], data: $0.data)
            }
        }
        let gates = try layers("ffn_gate.weight"), downs = try layers("ffn_down.weight")
        guard let f = gates.first?.rows, let d = gates.first?.cols, downs.count == gates.count else {
            throw KernelError("\(model) has no feed-forward layers the sparse kernels can run on")
        }
        var rng = SystemRandomNumberGenerator()
        let kept = max(1, Int((keep * Double(f)).rounded()))
        let selections: [[Int32]] = gates.map { _ in Array(0..<Int32(f)).shuffled(using: &rng).prefix(kept).sorted() }
        let downColumns = downs.map { ColumnMajorInt8Matrix($0, workers: pool.threadCount) }
        let matmul = MatMul(pool: pool)
        let x = (0..<max(f, d)).map { Float(($0 * 104729) % 1999) / 999.5 - 1 }
        var out = [Float](repeating: 0, count: max(f, d))
        func timed(_ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
            median { x.withUnsafeBufferPointer { input in out.withUnsafeMutableBufferPointer { o in seconds { body(input.baseAddress!, o.baseAddress!) } } } }
        }
        let denseGate = timed { x, out in for w in gates { matmul(w, x, tokens: 1, into: out) } }
        let sparseGate = timed { x, out in
            for (w, s) in zip(gates, selections) { s.withUnsafeBufferPointer { matmul.selectedRows(w, x, rows: $0, into: out) } }
        }
        let denseDown = timed { x, out in for w in downs { matmul(w, x, tokens: 1, into: out) } }
        let selectedColumns = timed { x, out in
            for (w, s) in zip(downColumns, selections) { s.withUnsafeBufferPointer { matmul.selectedColumns(w, x, columns: $0, into: out) } }
        }
        func gigabytes(_ bytes: Int) -> Double { Double(bytes * gates.count) / 1e9 }
        func meanBytes(_ layers: [WeightMatrix]) -> Int { layers.reduce(0) { $0 + $1.byteCount } / layers.count }
        print("\n| feed-forward kernels, \(gates.count) layers, \(kept) of \(f) neurons kept | µs per layer | GB/s |\n|---|---:|---:|")
        for (name, time, bytes) in [("gate, dense (\(gates[0].type.name))", denseGate, meanBytes(gates)),
                                    ("gate, selected rows", sparseGate, kept * gates[0].rowBytes),
                                    ("down, dense (\(Set(downs.map(\.type.name)).sorted().joined(separator: ", ")))", denseDown, meanBytes(downs)),
                                    ("down, selected columns (int8 copy)", selectedColumns, downColumns[0].bytesRead(columns: kept))] {
            print("| \(name) | " + String(format: "%.1f | %.1f |", time * 1e6 / Double(gates.count), gigabytes(bytes) / time))
        }
    }

    /// Every distinct (type, shape) weight matrix: one decode step and one prefill batch.
    private func timeMatrices(_ file: GGUFFile, pool: ThreadPool) throws {
        let matmul = MatMul(pool: pool)
        var seen = Set<String>()
        print("| tensor | type | rows x cols | decode µs | decode GB/s | prefill ms (\(batch) tokens) | prefill GOP/s |")
        print("|---|---|---|---:|---:|---:|---:|")
        for tensor in file.tensors where tensor.shape.count == 2 && tensor.type.isComputable {
            let cols = tensor.shape[0], rows = tensor.shape[1]
            guard seen.insert("\(tensor.type.name) \(rows)x\(cols)").inserted else { continue }
            let w = try WeightMatrix(type: tensor.type, rows: rows, cols: cols, data: tensor.data)
            // Rows are capped so the output-sized matrices do not dominate the run time.
            let decode = median { time(matmul, w, tokens: 1) }
            let prefillRows = min(rows, 4096)
            let slice = try WeightMatrix(type: tensor.type, rows: prefillRows, cols: cols, data: tensor.data)
            let prefill = median { time(matmul, slice, tokens: batch) }
            let gigabytes = Double(w.byteCount) / 1e9
            let operations = 2 * Double(prefillRows * cols * batch) / 1e9
            let name = tensor.name.split(separator: ".").dropFirst(tensor.name.hasPrefix("blk.") ? 2 : 0).joined(separator: ".")
            print("| \(name) | \(tensor.type.name) | \(prefillRows == rows ? "" : "\(prefillRows)/")\(rows) x \(cols) | "
                + String(format: "%.1f | %.1f | %.2f | %.1f |", decode * 1e6, gigabytes / decode, prefill * 1e3, operations / prefill))
        }
    }

    /// Attention at the model's head shape over `context` cached positions, through every
    /// layer's own cache (as a forward pass reads them, mostly from memory): one decode query,
    /// and a verification pass of 8 queries summed as single steps. Microseconds per layer.
    private func timeAttention(_ file: GGUFFile, pool: ThreadPool) {
        guard let arch = file.string("general.architecture"), let heads = file.int("\(arch).attention.head_count"),
              let width = file.int("\(arch).embedding_length"), let layers = file.int("\(arch).block_count") else { return }
        let kvHeads = file.int("\(arch).attention.head_count_kv") ?? heads
        let headDim = file.int("\(arch).attention.key_length") ?? width / heads
        let attention = Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: context + 8, pool: pool)
        let cacheSize = (context + 8) * kvHeads * headDim
        let caches: [[Float]] = (0..<2 * layers).map { layer in
            (0..<cacheSize).map { (i: Int) -> Float in Float((i * 7919 + layer) % 2003) / 1001.5 - 1 }
        }
        print("\n| attention (\(heads) heads, \(kvHeads) kv, dim \(headDim)), \(context) positions | µs per layer |\n|---|---:|")
        for (name, tokens) in [("decode, 1 query", 1), ("verification, 8 queries", 8)] {
            let queries = (0..<tokens * heads * headDim).map { Float(($0 * 104729) % 1999) / 999.5 - 1 }
            var output = [Float](repeating: 0, count: tokens * heads * headDim)
            let perLayer = median {
                output.withUnsafeMutableBufferPointer { out in
                    seconds {
                        for layer in 0..<layers {
                            attention(queries: queries, keys: caches[2 * layer], values: caches[2 * layer + 1], tokens: tokens,
                                      firstPosition: context - tokens + 1, window: nil, scale: 1 / Float(headDim).squareRoot(),
                                      order: .singleToken, into: out.baseAddress!)
                        }
                    }
                } / Double(layers)
            }
            print("| \(name) | " + String(format: "%.1f |", perLayer * 1e6))
        }
    }

    private func median(_ sample: () -> Double) -> Double {
        _ = sample()  // warm-up: page in the weights, grow the scratch buffers
        let samples = (0..<repetitions).map { _ in sample() }.sorted()
        return samples[samples.count / 2]
    }

    /// Seconds for one multiply of `tokens` tokens of activations (smooth values in -1...1).
    private func time(_ matmul: MatMul, _ w: WeightMatrix, tokens: Int) -> Double {
        let input = (0..<tokens * w.cols).map { Float(($0 * 7919) % 2003) / 1001.5 - 1 }
        var output = [Float](repeating: 0, count: tokens * w.rows)
        let order: SummationOrder = singleTokenOrder ? .singleToken : .referenceBatch
        return input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { o in seconds { matmul(w, x.baseAddress!, tokens: tokens, order: order, into: o.baseAddress!) } }
        }
    }

    /// Wall-clock seconds `body` takes.
    private func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
