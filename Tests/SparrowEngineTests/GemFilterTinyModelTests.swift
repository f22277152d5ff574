import Foundation
@testable import SparrowEngine
import SparrowGGUF
import SparrowKernels
import SparrowTestSupport
import Testing

/// A two-layer Llama-style model with seeded random F32 weights: small enough that the test
/// can recompute GemFilter's layer-0 selection by hand, in Float64.
private struct TinyModel {
    static let width = 8, heads = 2, kvHeads = 1, headDim = 4, vocabulary = 16, layers = 2
    static let ropeBase = 10_000.0

    let embedding: [[Float]]       // [token][width]
    let attentionNorm: [Float]
    let query: [[Float]]           // [heads * headDim][width]
    let key: [[Float]]             // [kvHeads * headDim][width]
    let path: String

    init(directory: TemporaryDirectory) {
        var rng = SplitMix64(seed: 2409_17422)
        func matrix(_ rows: Int, _ cols: Int) -> [[Float]] {
            (0..<rows).map { _ in (0..<cols).map { _ in Float.random(in: -1...1, using: &rng) } }
        }
        let w = Self.width, qDim = Self.heads * Self.headDim, kvDim = Self.kvHeads * Self.headDim
        embedding = matrix(Self.vocabulary, w)
        attentionNorm = (0..<w).map { _ in Float.random(in: 0.5...1.5, using: &rng) }
        query = matrix(qDim, w)
        key = matrix(kvDim, w)

        var tensors: [GGUFTestWriter.Tensor] = [
            .f32("token_embd.weight", shape: [w, Self.vocabulary], embedding.flatMap { $0 }),
            .f32("output_norm.weight", shape: [w], [Float](repeating: 1, count: w)),
        ]
        for layer in 0..<Self.layers {
            let p = "blk.\(layer)."
            // Layer 0's attention inputs are the ones the test checks; the rest only has to run.
            tensors += [
                .f32(p + "attn_norm.weight", shape: [w], layer == 0 ? attentionNorm : matrix(1, w)[0]),
                .f32(p + "attn_q.weight", shape: [w, qDim], (layer == 0 ? query : matrix(qDim, w)).flatMap { $0 }),
                .f32(p + "attn_k.weight", shape: [w, kvDim], (layer == 0 ? key : matrix(kvDim, w)).flatMap { $0 }),
                .f32(p + "attn_v.weight", shape: [w, kvDim], matrix(kvDim, w).flatMap { $0 }),
                .f32(p + "attn_output.weight", shape: [qDim, w], matrix(w, qDim).flatMap { $0 }),
                .f32(p + "ffn_norm.weight", shape: [w], [Float](repeating: 1, count: w)),
                .f32(p + "ffn_gate.weight", shape: [w, w], matrix(w, w).flatMap { $0 }),
                .f32(p + "ffn_up.weight", shape: [w, w], matrix(w, w).flatMap { $0 }),
                .f32(p + "ffn_down.weight", shape: [w, w], matrix(w, w).flatMap { $0 }),
            ]
        }
        let writer = GGUFTestWriter(metadata: [
            ("general.architecture", .string("llama")),
            ("llama.block_count", .uint32(UInt32(Self.layers))),
            ("llama.embedding_length", .uint32(UInt32(w))),
            ("llama.feed_forward_length", .uint32(UInt32(w))),
            ("llama.attention.head_count", .uint32(UInt32(Self.heads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(Self.kvHeads))),
            ("llama.context_length", .uint32(256)),
            ("llama.rope.freq_base", .float32(Float(Self.ropeBase))),
            ("llama.vocab_size", .uint32(UInt32(Self.vocabulary))),
        ], tensors: tensors)
        path = directory.write(writer.bytes())
    }

    /// Layer 0's post-RoPE projection of `token` at `position` (RMS norm, matrix, adjacent-pair rotation).
    func projected(_ weights: [[Float]], token: Int, position: Int) -> [Double] {
        let x = embedding[token].map(Double.init)
        let rms = (x.map { $0 * $0 }.reduce(0, +) / Double(x.count) + 1e-5).squareRoot()
        let normed = x.indices.map { x[$0] / rms * Double(attentionNorm[$0]) }
        var y = weights.map { row in zip(row, normed).map { Double($0) * $1 }.reduce(0, +) }
        for head in stride(from: 0, to: y.count, by: Self.headDim) {
            for pair in 0..<(Self.headDim / 2) {
                let angle = Double(position) * pow(Self.ropeBase, -2 * Double(pair) / Double(Self.headDim))
                let (a, b) = (y[head + 2 * pair], y[head + 2 * pair + 1])
                y[head + 2 * pair] = a * cos(angle) - b * sin(angle)
                y[head + 2 * pair + 1] = a * sin(angle) + b * cos(angle)
            }
        }
        return y
    }
}

@Suite struct GemFilterTinyModelTests {
    private let directory = TemporaryDirectory()

    /// The whole selection path on known weights: layer-0 queries and keys at their positions,
    /// scores summed over both query heads against the shared key head, the width-5 average
    /// pool and the top-k in prompt order, against an independent Float64 computation.
    @Test func selectsTheTokensAnIndependentComputationSelects() throws {
        let tiny = TinyModel(directory: directory)
        let model = try TransformerModel(path: tiny.path)
        var rng = SplitMix64(seed: 7)
        let prompt = (0..<40).map { _ in Int.random(in: 0..<TinyModel.vocabulary, using: &rng) }
        let keep = 12

        let last = tiny.projected(tiny.query, token: prompt.last!, position: prompt.count - 1)
        let scores = prompt.enumerated().map { position, token in
            let key = tiny.projected(tiny.key, token: token, position: position)
            return stride(from: 0, to: last.count, by: TinyModel.headDim).map { head in
                (0..<TinyModel.headDim).map { last[head + $0] * key[$0] }.reduce(0, +)
            }.reduce(0, +)
        }
        let pooled = scores.indices.map { i in scores[max(0, i - 2)...min(scores.count - 1, i + 2)].reduce(0, +) / 5 }
        let ranked = pooled.indices.sorted { pooled[$0] > pooled[$1] }
        #expect(pooled[ranked[keep - 1]] - pooled[ranked[keep]] > 1e-3, "the seed gives a clear cut between kept and dropped")
        let expected = ranked.prefix(keep).sorted()

        let kept = try GemFilter(layer: 0, keep: keep).keptIndices(of: prompt, model: model, pool: ThreadPool(threadCount: 2))
        #expect(kept == expected)
    }

    /// Calibration reads every layer's keys from a full pass and recomputes only the last
    /// token; GemFilter runs just the first layers. Both must select the same tokens.
    @Test func aFullPassSelectsAsTheTruncatedPassDoes() throws {
        let model = try TransformerModel(path: TinyModel(directory: directory).path)
        let pool = ThreadPool(threadCount: 2)
        var rng = SplitMix64(seed: 11)
        let prompt = (0..<30).map { _ in Int.random(in: 0..<TinyModel.vocabulary, using: &rng) }
        let session = Session(model: model, contextSize: prompt.count, pool: pool)
        try session.evaluate(Array(prompt.dropLast()))
        for layer in 0..<TinyModel.layers {
            for (scoring, window) in [(GemFilter.Scoring.raw, 1), (.attention, 4)] {
                let filter = GemFilter(layer: layer, keep: 10, scoring: scoring, queryWindow: window)

                let scored = prompt.count - window
                if session.count > scored { session.truncate(to: scored) }
                if session.count < scored { try session.evaluate(Array(prompt[session.count..<scored])) }
                let (keys, queries) = try session.keysAndQueries(ofNext: Array(prompt.suffix(window)), atLayer: layer)
                #expect(keys.count == prompt.count * TinyModel.kvHeads * TinyModel.headDim)
                #expect(session.count == prompt.count - window, "the probed tokens are not cached")
                #expect(filter.keptIndices(keys: keys, queries: queries, config: model.config)
                    == (try filter.keptIndices(of: prompt, model: model, pool: pool)))
            }
        }
    }

    /// GemFilter's layer-major pass (every chunk through one layer, then the next) gives the
    /// keys and queries of a session's token-major pass, with and without an attention span.
    @Test func theLayerMajorPassMatchesTheSession() throws {
        let model = try TransformerModel(path: TinyModel(directory: directory).path)
        let pool = ThreadPool(threadCount: 2)
        var rng = SplitMix64(seed: 5)
        let prompt = (0..<30).map { _ in Int.random(in: 0..<TinyModel.vocabulary, using: &rng) }
        for span in [nil, AttentionSpan(window: 6, sinks: 2)] {
            for layer in 0..<TinyModel.layers {
                let session = Session(model: model, contextSize: prompt.count, pool: pool)
                try session.prefill(Array(prompt.dropLast(3)), throughLayer: layer, span: span)
                let (keys, queries) = try session.keysAndQueries(ofNext: Array(prompt.suffix(3)), atLayer: layer, span: span)
                let expected = (Array(keys), Array(queries))
                let worst = try LayerMajorPass.keysAndQueries(of: prompt, queryCount: 3, atLayer: layer, span: span, model: model,
                                                              pool: pool, chunk: 7) { keys, queries in
                    #expect(keys.count == expected.0.count && queries.count == expected.1.count)
                    return zip(Array(keys) + Array(queries), expected.0 + expected.1).map { abs($0 - $1) }.max() ?? .infinity
                }
                #expect(worst < 1e-4, "layer \(layer), span \(String(describing: span)): differs by \(worst)")
            }
        }
        #expect(throws: EvaluationError.self) {
            try LayerMajorPass.keysAndQueries(of: prompt, queryCount: 31, atLayer: 0, span: nil, model: model, pool: pool) { _, _ in }
        }
    }

    @Test func aPartialPassCannotBeEvaluatedOn() throws {
        let model = try TransformerModel(path: TinyModel(directory: directory).path)
        let session = Session(model: model, contextSize: 16, pool: ThreadPool(threadCount: 1))
        try session.prefill([1, 2, 3], throughLayer: 0)
        #expect(session.reusablePrefix(of: [1, 2, 3, 4]) == 0)
        #expect(throws: EvaluationError.self) { try session.evaluate([4]) }
        #expect(throws: EvaluationError.self) { try session.keysAndQueries(ofNext: [4], atLayer: 1) }
        _ = try session.keysAndQueries(ofNext: [4], atLayer: 0)
        session.truncate(to: 0)
        try session.evaluate([1, 2, 3])
        #expect(session.reusablePrefix(of: [1, 2, 3, 4]) == 3)
        #expect(session.reusablePrefix(of: [1, 2, 3]) == 2, "the last prompt token is always evaluated again")
        #expect(session.reusablePrefix(of: [1, 5, 3, 4]) == 1)
    }
}
