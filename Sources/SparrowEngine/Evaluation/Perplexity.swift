import Foundation
import SparrowKernels

/// Token-level perplexity over text, in windows that each start from an empty cache.
///
/// The text's tokens (no special tokens) are cut into windows of `window` tokens starting
/// every `stride` tokens, each after a BOS when the model adds one. A window scores the tokens
/// no earlier window scored, each predicted from the window's tokens before it; a window's
/// first token is scored only after a BOS. scripts/perplexity_reference.py computes the same
/// with llama.cpp.
public struct PerplexityEvaluation {
    /// One window: text positions `begin..<end`, of which `scoredFrom..<end` are scored.
    public struct Window: Equatable, Sendable {
        public let begin, scoredFrom, end: Int
    }

    public struct ScoredToken: Encodable, Sendable {
        public let position, token: Int
        public let nll: Double
    }

    public struct Result: Encodable, Sendable {
        public let perplexity: Double
        public let tokens: Int
        public let meanNll: Double
        public let textTokens: Int
        public let ctx: Int
        public let stride: Int
        /// Evaluation steps: batched windows or one decode step per token.
        public let stepwise: Bool
        public let seconds: Double
        /// Every scored token (left out of the JSON report).
        public let scored: [ScoredToken]

        enum CodingKeys: String, CodingKey { case perplexity, tokens, meanNll, textTokens, ctx, stride, stepwise, seconds }
    }

    public let contextSize: Int
    public let stride: Int
    /// Each token through a decode step (what a decode-time method such as contextual sparsity
    /// changes) rather than each window in one batch.
    public let stepwise: Bool
    public let bos: Int?

    /// `stride` nil: windows side by side. Throws unless 2 <= contextSize and stride fits a window.
    public init(contextSize: Int, stride: Int? = nil, stepwise: Bool, bos: Int?) throws {
        let window = contextSize - (bos == nil ? 0 : 1)
        guard window >= 2 else { throw EvaluationError(description: "a context of \(contextSize) leaves no room to score tokens") }
        let stride = stride ?? window
        guard (1...window).contains(stride) else {
            throw EvaluationError(description: "stride \(stride) must be within 1...\(window) (the text tokens in one window)")
        }
        self.contextSize = contextSize
        self.stride = stride
        self.stepwise = stepwise
        self.bos = bos
    }

    /// Text tokens per window.
    public var window: Int { contextSize - (bos == nil ? 0 : 1) }

    /// The windows over `count` text tokens.
    public func windows(count: Int) -> [Window] {
        var windows: [Window] = [], scoredUpTo = 0, begin = 0
        while scoredUpTo < count {
            let end = min(begin + window, count)
            let from = max(begin + (bos == nil ? 1 : 0), scoredUpTo)
            if from < end { windows.append(Window(begin: begin, scoredFrom: from, end: end)) }
            scoredUpTo = end
            begin += stride
        }
        return windows
    }

    /// Scores `tokens` in `session` (whose context must hold a window); `onWindow` hears of
    /// each window done.
    public func run(_ tokens: [Int], in session: Session, onWindow: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        guard session.capacity >= contextSize else {
            throw EvaluationError(description: "the session's context (\(session.capacity)) is smaller than the window (\(contextSize))")
        }
        let windows = windows(count: tokens.count)
        guard !windows.isEmpty else { throw EvaluationError(description: "the text has \(tokens.count) tokens; at least 2 are needed") }
        let start = Date()
        var scored: [ScoredToken] = []
        for (w, window) in windows.enumerated() {
            session.truncate(to: 0)
            let input = (bos.map { [$0] } ?? []) + tokens[window.begin..<window.end]
            let offset = bos == nil ? 0 : 1   // input index of text position `begin`
            // Input index i predicts text position begin + i + 1 - offset.
            let firstRow = window.scoredFrom - window.begin + offset - 1
            func score(_ logits: UnsafeBufferPointer<Float>, position: Int) {
                let nll = logSumExp(logits.baseAddress!, count: logits.count) - Double(logits[tokens[position]])
                scored.append(ScoredToken(position: position, token: tokens[position], nll: nll))
            }
            if stepwise {
                if firstRow > 0 { try session.evaluate(Array(input[..<firstRow])) }
                for i in firstRow..<(input.count - 1) {
                    score(try session.evaluate([input[i]]).last, position: window.begin + i + 1 - offset)
                }
            } else {
                let logits = try session.evaluate(Array(input.dropLast()), logits: .all)
                for i in firstRow..<(input.count - 1) { score(logits[i], position: window.begin + i + 1 - offset) }
            }
            onWindow(w + 1, windows.count)
        }
        let mean = scored.reduce(0) { $0 + $1.nll } / Double(scored.count)
        return Result(perplexity: Foundation.exp(mean), tokens: scored.count, meanNll: mean, textTokens: tokens.count,
                      ctx: contextSize, stride: stride, stepwise: stepwise, seconds: Date().timeIntervalSince(start), scored: scored)
    }
}
