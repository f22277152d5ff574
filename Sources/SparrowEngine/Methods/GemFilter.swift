import Foundation
import SparrowKernels

/// GemFilter (arXiv 2409.17422): an early layer chooses the prompt tokens that matter.
///
/// Layers 0...`layer` run over the whole prompt (in chunks, keeping only those layers' cache);
/// each token j is scored by the sum over query heads of the last token's post-RoPE query with
/// j's post-RoPE key (raw dot products: no scaling, no softmax; GQA keys shared), the scores
/// are smoothed by an average pool of width 5 (zero padding counts), and the `keep` best
/// tokens are kept in their original order. Prompts of at most `keep` tokens are kept whole.
public struct GemFilter: PromptFilter {
    /// How one layer's query-key products become a score per token.
    public enum Scoring: String, Sendable, CaseIterable {
        /// The paper's: raw dot products summed over query heads.
        case raw
        /// Sparrow's variant: each head's attention probabilities (scaled, softmaxed over the
        /// prompt) summed over heads, so every head has the same say. Raw sums let the heads
        /// with the largest products (often positional ones) decide alone.
        case attention
    }

    public let layer: Int
    public let keep: Int
    /// Also keep the first token and the last `trailingWindow` tokens (0: pure GemFilter).
    public let trailingWindow: Int
    public let scoring: Scoring
    /// How many of the prompt's last tokens score it with their queries (1: the paper's last
    /// token only). More lets the question's own words look for what they ask about, as
    /// SnapKV's observation window does; each query scores only the tokens before it.
    public let queryWindow: Int
    /// When set, the filter pass's layers attend only to this many latest positions and the
    /// first `attentionSinks` (nil: the paper's full causal attention). The pass then costs
    /// linear rather than quadratic time in the prompt; early layers mostly look nearby, and
    /// calibration measures what it costs. Without the sinks, tokens past the window from the
    /// start lose the attention mass models park on the first tokens, and retrieval fails.
    public let attentionWindow: Int?

    public static let poolWidth = 5
    public static let attentionSinks = 4

    public init(layer: Int, keep: Int = 1024, trailingWindow: Int = 0, scoring: Scoring = .raw, queryWindow: Int = 1,
                attentionWindow: Int? = nil) {
        self.layer = layer
        self.keep = keep
        self.trailingWindow = trailingWindow
        self.scoring = scoring
        self.queryWindow = queryWindow
        self.attentionWindow = attentionWindow
    }

    /// The same filter at another layer.
    public func atLayer(_ layer: Int) -> GemFilter {
        GemFilter(layer: layer, keep: keep, trailingWindow: trailingWindow, scoring: scoring, queryWindow: queryWindow, attentionWindow: attentionWindow)
    }

    /// What a calibrated layer depends on besides the model: "raw-1" for the paper's scoring.
    public var calibrationVariant: String {
        "\(scoring.rawValue)-\(queryWindow)" + (attentionWindow.map { "-window\($0)" } ?? "")
    }

    public var name: String {
        "gemfilter(layer \(layer), keep \(keep)" + (scoring == .raw ? "" : ", \(scoring.rawValue) scoring")
            + (queryWindow == 1 ? "" : ", \(queryWindow) queries") + (attentionWindow.map { ", attention window \($0)" } ?? "") + ")"
    }

    /// The filter pass runs layer-major (`LayerMajorPass`): its memory is the prompt's hidden
    /// states and one layer's keys and values, not a cache of every layer up to `layer`.
    public func keptIndices(of prompt: [Int], model: TransformerModel, pool: ThreadPool) throws -> [Int] {
        guard prompt.count > keep else { return Array(prompt.indices) }
        return try LayerMajorPass.keysAndQueries(of: prompt, queryCount: queryTokens(of: prompt.count), atLayer: layer, span: attentionSpan,
                                                 model: model, pool: pool) { keys, queries in
            keptIndices(keys: keys, queries: queries, config: model.config)
        }
    }

    /// Where the filter pass's layers attend (nil: everywhere before, as in the paper).
    public var attentionSpan: AttentionSpan? { attentionWindow.map { AttentionSpan(window: $0, sinks: Self.attentionSinks) } }

    /// How many trailing tokens of a prompt of `count` score it (at least one token is scored).
    package func queryTokens(of count: Int) -> Int { min(queryWindow, count - 1) }

    /// The selection from one layer's keys of the whole prompt and its last tokens' queries.
    package func keptIndices(keys: UnsafeBufferPointer<Float>, queries: UnsafeBufferPointer<Float>, config c: ModelConfig) -> [Int] {
        let scores = Self.scores(queries: queries, keys: keys, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim,
                                 attentionScale: scoring == .attention ? c.attentionScale : nil)
        return Self.select(Self.averagePooled(scores), keep: keep, forced: forcedIndices(count: scores.count))
    }

    private func forcedIndices(count: Int) -> [Int] {
        guard trailingWindow > 0 else { return [] }
        return [0] + Array(max(1, count - trailingWindow)..<count)
    }

    /// score[j] = sum over the queries (the last tokens, in order) and their heads h of
    /// query[h] · keys[j][h / (heads / kvHeads)], or with an `attentionScale`, of softmax over j
    /// of those products times the scale. A query sees only the keys up to its own token.
    package static func scores(queries: UnsafeBufferPointer<Float>, keys: UnsafeBufferPointer<Float>, heads: Int, kvHeads: Int, headDim: Int,
                               attentionScale: Float? = nil) -> [Float] {
        let group = heads / kvHeads, kvDim = kvHeads * headDim, qDim = heads * headDim
        let count = keys.count / kvDim, queryCount = queries.count / qDim
        var total = [Float](repeating: 0, count: count)
        var head = [Float](repeating: 0, count: count)
        for i in 0..<queryCount {
            let visible = count - queryCount + i + 1
            for h in 0..<heads {
                let q = queries.baseAddress! + i * qDim + h * headDim
                for j in 0..<visible {
                    let k = keys.baseAddress! + j * kvDim + (h / group) * headDim
                    var dot: Float = 0
                    for d in 0..<headDim { dot = dot.addingProduct(q[d], k[d]) }
                    head[j] = dot
                }
                if let attentionScale {
                    let top = head[..<visible].max()!
                    for j in 0..<visible { head[j] = expf((head[j] - top) * attentionScale) }
                    let sum = head[..<visible].reduce(0, +)
                    for j in 0..<visible { head[j] /= sum }
                }
                for j in 0..<visible { total[j] += head[j] }
            }
        }
        return total
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
