import Foundation
@testable import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

@Suite struct GemFilterSelectionTests {
    @Test func scoresSumRawDotProductsOverQueryHeadsSharingGQAKeys() {
        // 4 query heads over 2 key/value heads, head size 2, three tokens.
        let query: [Float] = [1, 0, 0, 1, 2, 0, 0, -1]
        let keys: [Float] = [
            1, 2, 3, 4,   // token 0: kv head 0 = (1, 2), kv head 1 = (3, 4)
            0, 0, 1, 1,
            -1, 5, 0, 2,
        ]
        let scores = query.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { GemFilter.scores(queries: q, keys: $0, heads: 4, kvHeads: 2, headDim: 2) }
        }
        // Heads 0 and 1 read kv head 0, heads 2 and 3 kv head 1; no scaling, no softmax.
        let expected: [Float] = [5, 1, 2]  // (1 + 2 + 6 - 4), (0 + 0 + 2 - 1), (-1 + 5 + 0 - 2)
        #expect(scores == expected)
    }

    @Test func aQueryWindowScoresCausallyAndAttentionScoringGivesEachHeadOneVote() {
        // One head of size 1, three tokens; the last two tokens' queries score.
        let keys: [Float] = [1, 2, 3]
        let queries: [Float] = [10, 1]
        let raw = queries.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { GemFilter.scores(queries: q, keys: $0, heads: 1, kvHeads: 1, headDim: 1) }
        }
        // Query 0 (token 1) sees tokens 0 and 1; query 1 (token 2) sees all three.
        #expect(raw == [10 + 1, 20 + 2, 3])
        let attention = queries.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { GemFilter.scores(queries: q, keys: $0, heads: 1, kvHeads: 1, headDim: 1, attentionScale: 0.5) }
        }
        let first = [exp(5.0), exp(10.0)], second = [exp(0.5), exp(1.0), exp(1.5)]
        let expected = [first[0] / (first[0] + first[1]) + second[0] / second.reduce(0, +),
                        first[1] / (first[0] + first[1]) + second[1] / second.reduce(0, +),
                        second[2] / second.reduce(0, +)]
        #expect(zip(attention, expected).allSatisfy { abs(Double($0) - $1) < 1e-6 })
        #expect(abs(attention.reduce(0, +) - 2) < 1e-6, "each query's head spreads one unit")
    }

    @Test func averagePoolOfFiveCountsPaddingAsZero() {
        let pooled = GemFilter.averagePooled([5, 0, 0, 0, 0, 0, 10])
        #expect(pooled == [1, 1, 1, 0, 2, 2, 2])
    }

    @Test func keepsTheBestInOriginalOrderWithForcedOnesFirst() {
        let scores: [Float] = [0.1, 0.9, 0.3, 0.9, 0.5, 0.0]
        #expect(GemFilter.select(scores, keep: 3, forced: []) == [1, 3, 4])
        // Ties go to the earlier token.
        #expect(GemFilter.select(scores, keep: 1, forced: []) == [1])
        #expect(GemFilter.select(scores, keep: 3, forced: [0, 5]) == [0, 1, 5])
    }

    @Test func baselinesKeepTheTailAndTheSinks() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 1)
        let prompt = Array(100..<110)
        #expect(try LastTokensFilter(keep: 3).keptIndices(of: prompt, model: model.transformer, pool: pool) == [7, 8, 9])
        #expect(try AttentionSinksFilter(keep: 6, sinks: 4).keptIndices(of: prompt, model: model.transformer, pool: pool) == [0, 1, 2, 3, 8, 9])
        #expect(try GemFilter(layer: 3, keep: 20).keptIndices(of: prompt, model: model.transformer, pool: pool) == Array(0..<10))
    }
}

@Suite struct PromptFilterGenerationTests {
    /// The kept tokens are a fresh prompt at positions 0..<k: generating with the filter equals
    /// generating from the kept token ids alone, and the result says which were kept.
    @Test func keptTokensArePrefilledAsAFreshPrompt() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(String(repeating: "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ", count: 8))
        var options = GenerationOptions()
        options.maxTokens = 6
        options.logprobs = 3
        options.promptFilter = GemFilter(layer: 8, keep: 64)
        let generator = Generator(tokenizer: model.tokenizer, session: Session(model: model.transformer, contextSize: 80, pool: pool))
        let filtered = try generator.generate(prompt: prompt, options: options)
        let kept = try #require(filtered.keptIndices)
        #expect(kept.count == 64 && kept == kept.sorted() && kept.last! < prompt.count)

        options.promptFilter = nil
        let direct = try Generator(tokenizer: model.tokenizer, session: Session(model: model.transformer, contextSize: 80, pool: pool))
            .generate(prompt: kept.map { prompt[$0] }, options: options)
        #expect(filtered.generatedTokens == direct.generatedTokens)
        #expect(filtered.topLogprobs.map { $0.map(\.token) } == direct.topLogprobs.map { $0.map(\.token) })
    }

    /// A second request with the same beginning evaluates only what differs, and replies the same.
    @Test func theCachedPromptPrefixIsReused() throws {
        let model = try catalogModel("smollm2-135m")
        let prompt = model.promptTokens("The quick brown fox jumps over the lazy dog because")
        var options = GenerationOptions()
        options.maxTokens = 8
        let generator = Generator(tokenizer: model.tokenizer, session: Session(model: model.transformer, contextSize: 64, pool: ThreadPool(threadCount: 2)))
        let first = try generator.generate(prompt: prompt, options: options)
        let second = try generator.generate(prompt: prompt, options: options)
        #expect(first.timings.reusedTokens == 0)
        #expect(second.timings.reusedTokens == prompt.count - 1)
        #expect(second.generatedTokens == first.generatedTokens)
    }
}

@Suite struct GemFilterRetrievalTests {
    /// A passphrase hidden mid-way in ~2k tokens of Austen: after GemFilter at the built-in
    /// calibrated layer keeps a quarter of the prompt, Qwen still answers with it.
    @Test func findsANeedleInTwoThousandTokens() throws {
        let model = try catalogModel("qwen2.5-coder-0.5b")
        let text = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/text/pride_and_prejudice_excerpt.txt"), encoding: .utf8)
        let middle = text.index(text.startIndex, offsetBy: text.count / 2)
        let haystack = text[..<middle] + "\nThe secret passphrase is BLUE-OTTER-42.\n" + text[middle...]
        let prompt = try model.chatPromptTokens([ChatMessage(role: "user", content: haystack
            + "\n\nWhat is the secret passphrase mentioned in the text above? Answer with the passphrase only.")])
        #expect(prompt.count > 1900)
        let sha256 = try #require(ModelCatalog.model(named: "qwen2.5-coder-0.5b")).sha256

        // The paper's filter pass and the windowed one (2048 covers this prompt: same selection).
        for attentionWindow in [nil, 2048] {
            let unplaced = GemFilter(layer: 0, keep: 512, attentionWindow: attentionWindow)
            let layer = try #require(GemFilterCalibration.builtIn["\(sha256)/\(unplaced.calibrationVariant)"])
            var options = GenerationOptions()
            options.maxTokens = 10
            options.promptFilter = unplaced.atLayer(layer)
            let session = Session(model: model.transformer, contextSize: prompt.count + 16, pool: ThreadPool(threadCount: 2))
            let result = try Generator(tokenizer: model.tokenizer, session: session).generate(prompt: prompt, options: options)
            #expect(result.timings.keptTokens == 512)
            #expect(result.text.contains("BLUE-OTTER-42"), "\(options.promptFilter!.name) answered \(result.text)")
        }
    }
}
