import Foundation
@testable import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

/// A perplexity fixture from scripts/perplexity_reference.py (llama.cpp through xllamacpp).
struct PerplexityFixture: Decodable {
    struct Window: Decodable { let begin, scoredFrom, end: Int }
    struct Scored: Decodable { let position, token: Int; let nll: Double }
    let perplexity: Double
    let ctx, stride: Int
    let bos: Bool
    let textTokenIds: [Int]
    let windows: [Window]
    let scored: [Scored]

    static func load(_ model: String) throws -> PerplexityFixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/perplexity/\(model).json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(PerplexityFixture.self, from: Data(contentsOf: url))
    }
}

@Suite(.serialized) struct PerplexityTests {
    /// Same windows and scored tokens as llama.cpp, per-token NLL within 0.05 nats, perplexity
    /// within 0.5%. SmolLM2 only: on the Qwen and Gemma fixtures the mean difference is 0.04
    /// and 0.09 nats (perplexity 0.6% and 0.9% apart), not yet explained.
    @Test(arguments: ["smollm2-135m"])
    func matchesLlamaCpp(_ name: String) throws {
        let fixture = try PerplexityFixture.load(name)
        let model = try catalogModel(name)
        let evaluation = try PerplexityEvaluation(contextSize: fixture.ctx, stride: fixture.stride, stepwise: true,
                                                  bos: fixture.bos ? model.tokenizer.bosToken : nil)
        #expect(evaluation.windows(count: fixture.textTokenIds.count).map { [$0.begin, $0.scoredFrom, $0.end] }
                == fixture.windows.map { [$0.begin, $0.scoredFrom, $0.end] })
        let session = Session(model: model.transformer, contextSize: fixture.ctx, pool: ThreadPool(threadCount: 2))
        let result = try evaluation.run(fixture.textTokenIds, in: session)
        #expect(result.scored.map { [$0.position, $0.token] } == fixture.scored.map { [$0.position, $0.token] })
        let worst = zip(result.scored, fixture.scored).map { abs($0.nll - $1.nll) }.max() ?? .infinity
        #expect(worst < 0.05, "\(name): largest per-token NLL difference \(worst)")
        #expect(abs(result.perplexity / fixture.perplexity - 1) < 0.005, "\(name): \(result.perplexity) vs llama.cpp \(fixture.perplexity)")
        // The batched evaluation scores the same tokens, as closely.
        let batched = try PerplexityEvaluation(contextSize: fixture.ctx, stride: fixture.stride, stepwise: false,
                                               bos: evaluation.bos).run(fixture.textTokenIds, in: session)
        #expect(abs(batched.perplexity / fixture.perplexity - 1) < 0.005, "\(name) batched: \(batched.perplexity) vs \(fixture.perplexity)")
    }

    @Test func windowsCoverEveryTokenOnce() throws {
        let evaluation = try PerplexityEvaluation(contextSize: 10, stride: 4, stepwise: false, bos: nil)
        let windows = evaluation.windows(count: 23)
        #expect(windows.map(\.begin) == [0, 4, 8, 12, 16])
        #expect(windows.first?.scoredFrom == 1 && windows.last?.end == 23)
        for (a, b) in zip(windows, windows.dropFirst()) { #expect(a.end == b.scoredFrom) }
        #expect(throws: EvaluationError.self) { try PerplexityEvaluation(contextSize: 10, stride: 11, stepwise: false, bos: nil) }
        #expect(throws: EvaluationError.self) { try PerplexityEvaluation(contextSize: 2, stepwise: false, bos: 1) }
    }
}
