import Foundation
import SparrowKernels

/// Contextual sparsity's trade-off, side by side with the dense model in one process: per
/// rule and sparsity level, perplexity on held-out text (one decode step per token, as
/// sparsity runs) and decode speed, each sparse decode run paired with a dense one right
/// before it so that both see the same machine.
public struct SparsityFrontier {
    public struct Point: Encodable, Sendable {
        public let rule: String
        public let level: Double
        /// The candidate head's exact logits per step and preview rank (0: dense head).
        public let headCandidates, headRank: Int
        /// Under TEAL, the fraction of up's rows skipped by the gate.
        public let upSparsity: Double
        public let perplexity: Double
        public let perplexityRatio: Double
        public let decodeTokensPerSecond: Double
        public let denseDecodeTokensPerSecond: Double
        /// The median of the paired runs' speed ratios.
        public let speedup: Double
        /// Weight bytes a decode step reads, sparse over dense: 1 / this is the speed-up a
        /// purely bandwidth-bound step would get.
        public let weightBytesRatio: Double
    }

    public struct Report: Encodable, Sendable {
        public let model: String
        public let densePerplexity: Double
        public let tokens: Int
        public let decodeTokens: Int
        public let repetitions: Int
        public let points: [Point]
    }

    public let model: LanguageModel
    public let sidecar: SparsitySidecar
    public let evaluation: PerplexityEvaluation
    public let pool: ThreadPool
    public var decodeTokens = 128
    public var repetitions = 5
    /// Applied at every point (see `ContextualSparsity.headCandidates`).
    public var headCandidates = 0
    public var headRank = 128
    /// The teal rule's points run at each of these (see `ContextualSparsity.upSparsity`).
    public var upLevels = [0.0]

    public init(model: LanguageModel, sidecar: SparsitySidecar, evaluation: PerplexityEvaluation, pool: ThreadPool) {
        self.model = model
        self.sidecar = sidecar
        self.evaluation = evaluation
        self.pool = pool
    }

    public func run(_ tokens: [Int], rules: [SparsityRule], levels: [Double], log: (String) -> Void) throws -> Report {
        let session = Session(model: model.transformer, contextSize: evaluation.contextSize, pool: pool)
        let dense = try evaluation.run(tokens, in: session)
        log(String(format: "dense: perplexity %.4f", dense.perplexity))
        let benchmark = Benchmark(model: model, contextSize: decodeTokens, pool: pool)
        let test = BenchmarkTest(.textGeneration, tokens: decodeTokens)
        var points: [Point] = []
        for rule in rules {
            for level in levels {
                for up in rule == .teal && level > 0 ? upLevels : [0] {
                    let method = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: rule, sparsity: level,
                                                     headCandidates: headCandidates, headRank: headRank, upSparsity: up, pool: pool)
                    session.decodeFeedForward = method
                    let sparse = try evaluation.run(tokens, in: session)
                    var denseRates: [Double] = [], sparseRates: [Double] = []
                    for _ in 0..<repetitions {
                        benchmark.session.decodeFeedForward = nil
                        denseRates.append(try benchmark.measure(test, repetitions: 1).tokensPerSecond.median)
                        benchmark.session.decodeFeedForward = method
                        sparseRates.append(try benchmark.measure(test, repetitions: 1).tokensPerSecond.median)
                    }
                    let point = Point(rule: rule.rawValue, level: method.meanSparsity, headCandidates: method.headCandidates,
                                      headRank: method.headRank, upSparsity: method.upSparsity, perplexity: sparse.perplexity,
                                      perplexityRatio: sparse.perplexity / dense.perplexity,
                                      decodeTokensPerSecond: SampleStatistics(sparseRates).median,
                                      denseDecodeTokensPerSecond: SampleStatistics(denseRates).median,
                                      speedup: SampleStatistics(zip(sparseRates, denseRates).map { $0 / $1 }).median,
                                      weightBytesRatio: Double(method.weightBytesPerToken) / Double(model.transformer.weightBytesPerToken))
                    points.append(point)
                    log(String(format: "%@ %.2f, up %.2f: perplexity %.4f (%.3fx), decode %.1f vs %.1f t/s (%.2fx; weight bytes %.2fx)", rule.rawValue,
                               point.level, point.upSparsity, point.perplexity, point.perplexityRatio, point.decodeTokensPerSecond, point.denseDecodeTokensPerSecond,
                               point.speedup, point.weightBytesRatio))
                }
            }
        }
        session.decodeFeedForward = nil
        benchmark.session.decodeFeedForward = nil
        return Report(model: model.file.path, densePerplexity: dense.perplexity, tokens: dense.tokens, decodeTokens: decodeTokens,
                      repetitions: repetitions, points: points)
    }
}
