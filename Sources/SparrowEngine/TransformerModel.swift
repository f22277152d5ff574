import SparrowGGUF
import SparrowKernels

/// A GGUF transformer's weights, bound in place to the memory-mapped file and validated.
///
/// One type serves llama, qwen2 and gemma3: their differences are optional tensors (QKV bias,
/// QK-norm, post-norms) and the traits in `ModelConfig`.
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let file: GGUFFile
    let tokenEmbedding: WeightMatrix
    let outputNorm: UnsafePointer<Float>
    let output: WeightMatrix
    let layers: [Layer]
    /// The copies of matrices re-encoded for this CPU's kernels (see `PreparedWeights`).
    let preparedWeights: PreparedWeights

    struct Layer {
        let attentionNorm: UnsafePointer<Float>
        let query, key, value, attentionOutput: WeightMatrix
        let queryBias, keyBias, valueBias: UnsafePointer<Float>?
        let queryNorm, keyNorm: UnsafePointer<Float>?
        let postAttentionNorm: UnsafePointer<Float>?
        let feedForwardNorm: UnsafePointer<Float>
        let gate, up, down: WeightMatrix
        let postFeedForwardNorm: UnsafePointer<Float>?
    }

    public convenience init(path: String) throws {
        try self.init(file: GGUFFile(path: path))
    }

    public init(file: GGUFFile) throws {
        let config = try ModelConfig(gguf: file)
        self.config = config
        self.file = file
        let prepared = PreparedWeights()
        preparedWeights = prepared
        let binder = WeightBinder(file: file, prepared: prepared)
        let d = config.embeddingSize
        // Embedding rows are looked up, not multiplied: kept as stored.
        tokenEmbedding = try binder.matrix("token_embd.weight", cols: d, multiplied: false)
        guard tokenEmbedding.rows == config.vocabularySize || config.vocabularySize == 0 else {
            throw ModelError("token_embd.weight has \(tokenEmbedding.rows) rows but the vocabulary has \(config.vocabularySize) tokens")
        }
        outputNorm = try binder.vector("output_norm.weight", count: d)
        // Tied embeddings: without an output matrix the logits reuse the embedding table.
        output = try binder.optionalMatrix("output.weight", rows: tokenEmbedding.rows, cols: d) ?? prepared.prepare(tokenEmbedding) ?? tokenEmbedding
        layers = try (0..<config.layerCount).map { i in
            let p = "blk.\(i)."
            let f = config.feedForwardSize
            return Layer(
                attentionNorm: try binder.vector(p + "attn_norm.weight", count: d),
                query: try binder.matrix(p + "attn_q.weight", rows: config.qDim, cols: d),
                key: try binder.matrix(p + "attn_k.weight", rows: config.kvDim, cols: d),
                value: try binder.matrix(p + "attn_v.weight", rows: config.kvDim, cols: d),
                attentionOutput: try binder.matrix(p + "attn_output.weight", rows: d, cols: config.qDim),
                queryBias: try binder.optionalVector(p + "attn_q.bias", count: config.qDim),
                keyBias: try binder.optionalVector(p + "attn_k.bias", count: config.kvDim),
                valueBias: try binder.optionalVector(p + "attn_v.bias", count: config.kvDim),
                queryNorm: try binder.optionalVector(p + "attn_q_norm.weight", count: config.headDim),
                keyNorm: try binder.optionalVector(p + "attn_k_norm.weight", count: config.headDim),
                postAttentionNorm: try binder.optionalVector(p + "post_attention_norm.weight", count: d),
                feedForwardNorm: try binder.vector(p + "ffn_norm.weight", count: d),
                gate: try binder.matrix(p + "ffn_gate.weight", rows: f, cols: d),
                up: try binder.matrix(p + "ffn_up.weight", rows: f, cols: d),
                down: try binder.matrix(p + "ffn_down.weight", rows: d, cols: f),
                postFeedForwardNorm: try binder.optionalVector(p + "post_ffw_norm.weight", count: d)
            )
        }
    }

    public var vocabularySize: Int { output.rows }

    /// Bytes of weights one decode step reads: every matrix once, plus one embedding row.
    /// (Summed layer by layer: quantisation mixes give layers different types.)
    public var weightBytesPerToken: Int {
        layers.reduce(0) { sum, l in
            [l.query, l.key, l.value, l.attentionOutput, l.gate, l.up, l.down].reduce(sum) { $0 + $1.byteCount }
        } + output.byteCount + tokenEmbedding.rowBytes
    }
}

/// Looks tensors up by name and checks their type and shape before the model points into them.
private struct WeightBinder {
    let file: GGUFFile
    let prepared: PreparedWeights

    /// A matrix that is `multiplied` comes re-encoded where `prepared` says so, and the file's
    /// pages of the original are given back.
    func matrix(_ name: String, rows: Int? = nil, cols: Int, multiplied: Bool = true) throws -> WeightMatrix {
        guard let m = try optionalMatrix(name, rows: rows, cols: cols, multiplied: multiplied) else {
            throw ModelError("missing tensor '\(name)'")
        }
        return m
    }

    func optionalMatrix(_ name: String, rows: Int? = nil, cols: Int, multiplied: Bool = true) throws -> WeightMatrix? {
        guard let t = file.tensor(named: name) else { return nil }
        guard t.shape.count == 2, t.shape[0] == cols, rows == nil || t.shape[1] == rows else {
            throw ModelError("tensor '\(name)' has shape \(t.shape), expected [\(cols), \(rows.map(String.init) ?? "any")]")
        }
        guard t.type.isComputable else {
            throw ModelError("tensor '\(name)' has type \(t.type.name), which Sparrow does not support")
        }
        do {
            let stored = try WeightMatrix(type: t.type, rows: t.shape[1], cols: cols, data: t.data)
            guard multiplied, let copy = try prepared.prepare(stored) else { return stored }
            file.releasePages(of: t)
            return copy
        } catch {
            throw ModelError("tensor '\(name)': \(error)")
        }
    }

    func vector(_ name: String, count: Int) throws -> UnsafePointer<Float> {
        guard let v = try optionalVector(name, count: count) else { throw ModelError("missing tensor '\(name)'") }
        return v
    }

    func optionalVector(_ name: String, count: Int) throws -> UnsafePointer<Float>? {
        guard let t = file.tensor(named: name) else { return nil }
        guard t.type == .f32, t.elementCount == count else {
            throw ModelError("tensor '\(name)' is \(t.type.name) \(t.shape), expected f32 [\(count)]")
        }
        return t.data.assumingMemoryBound(to: Float.self)
    }
}

/// Checks on what callers ask of a model, shared by the session and the layer-major pass.
extension TransformerModel {
    func checkLayer(_ layer: Int) throws {
        guard (0..<config.layerCount).contains(layer) else {
            throw EvaluationError(description: "layer \(layer) outside the model's 0..<\(config.layerCount)")
        }
    }

    func checkTokenIDs(_ tokens: some Sequence<Int>) throws {
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw EvaluationError(description: "token id \(bad) outside the vocabulary (0..<\(vocabularySize))")
        }
    }
}
