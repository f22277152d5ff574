import SparrowKernels

/// GemFilter (arXiv 2409.17422): an early layer chooses the prompt tokens that matter.
///
/// Layers 0...`layer` run over the whole prompt (in chunks, keeping only those layers' cache);
/// each token j is scored by the sum over query heads of the last token's post-RoPE query with
/// j's post-RoPE key (raw dot products: no scaling, no softmax; GQA keys shared), the scores
/// are smoothed by an average pool of width 5 (zero padding counts), and the `keep` best
/// tokens are kept in their original order. Prompts of at most `keep` tokens are kept whole.
public struct GemFilter: PromptFilter {
    public let layer: Int
    public let keep: Int
    /// Also keep the first token and the last `trailingWindow` tokens (0: pure GemFilter).
    public let trailingWindow: Int

    public static let poolWidth = 5

    public init(layer: Int, keep: Int = 1024, trailingWindow: Int = 0) {
        self.layer = layer
        self.keep = keep
        self.trailingWindow = trailingWindow
    }

    public var name: String { "gemfilter(layer \(layer), keep \(keep))" }

    public func keptIndices(of prompt: [Int], model: TransformerModel, pool: ThreadPool) throws -> [Int] {
        guard prompt.count > keep else { return Array(prompt.indices) }
        let session = Session(model: model, contextSize: prompt.count, pool: pool)
        try session.prefill(Array(prompt.dropLast()), throughLayer: layer)
        let (keys, query) = try session.keysAndQuery(ofNext: prompt.last!, atLayer: layer)
        return keptIndices(keys: keys, query: query, config: model.config)
    }

    /// The selection from one layer's keys of the whole prompt and its last token's query.
    package func keptIndices(keys: UnsafeBufferPointer<Float>, query: UnsafeBufferPointer<Float>, config c: ModelConfig) -> [Int] {
        let scores = Self.scores(query: query, keys: keys, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim)
        return Self.select(Self.averagePooled(scores), keep: keep, forced: forcedIndices(count: scores.count))
    }

    private func forcedIndices(count: Int) -> [Int] {
        guard trailingWindow > 0 else { return [] }
        return [0] + Array(max(1, count - trailingWindow)..<count)
    }

    /// score[j] = sum over heads h of query[h] · keys[j][h / (heads / kvHeads)].
    package static func scores(query: UnsafeBufferPointer<Float>, keys: UnsafeBufferPointer<Float>, heads: Int, kvHeads: Int, headDim: Int) -> [Float] {
        let group = heads / kvHeads, kvDim = kvHeads * headDim
        return (0..<keys.count / kvDim).map { j in
            var total: Float = 0
            for h in 0..<heads {
                let q = query.baseAddress! + h * headDim, k = keys.baseAddress! + j * kvDim + (h / group) * headDim
                var dot: Float = 0
                for d in 0..<headDim { dot = dot.addingProduct(q[d], k[d]) }
                total += dot
            }
            return total
        }
    }

    /// Mean over a window of `poolWidth` centred on each position; outside the prompt counts as 0.
    package static func averagePooled(_ scores: [Float]) -> [Float] {
        let half = poolWidth / 2
        return scores.indices.map { i in
            scores[max(0, i - half)...min(scores.count - 1, i + half)].reduce(0, +) / Float(poolWidth)
        }
    }

    /// The `keep` highest-scoring indices (ties: the earlier token), `forced` ones first, ascending.
    package static func select(_ scores: [Float], keep: Int, forced: [Int]) -> [Int] {
        var kept = Set(forced.prefix(keep))
        let ranked = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        for i in ranked where kept.count < keep { kept.insert(i) }
        return kept.sorted()
    }
}
