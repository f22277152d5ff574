import Foundation
@testable import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

@Suite struct SpeculativeSamplingTests {
    private func greedySampler() -> Sampler { Sampler(SamplingParameters()) }

    @Test func greedyKeepsTheDraftsMatchingTheArgmaxThenTakesTheArgmax() {
        var sampler = greedySampler()
        let drafts = [7, 8, 9].map { DraftToken(token: $0, distribution: .certain($0)) }
        let agreeingTwice = [7, 8, 4, 5].map(TokenDistribution.certain)
        #expect(SpeculativeSampling.verify(drafts, target: agreeingTwice, sampler: &sampler) == .init(accepted: 2, next: 4))
        let agreeingAlways = [7, 8, 9, 5].map(TokenDistribution.certain)
        #expect(SpeculativeSampling.verify(drafts, target: agreeingAlways, sampler: &sampler) == .init(accepted: 3, next: 5), "the bonus token")
        let neverAgreeing = [1, 8, 9, 5].map(TokenDistribution.certain)
        #expect(SpeculativeSampling.verify(drafts, target: neverAgreeing, sampler: &sampler) == .init(accepted: 0, next: 1))
    }

    /// The point of the rejection rule: whatever the draft proposes, what comes out is
    /// distributed as the target. Two positions, a draft distribution far from the target's;
    /// the frequencies of the emitted pairs must match the target's product distribution.
    @Test func sampledOutputFollowsTheTargetDistribution() {
        let target = TokenDistribution(tokens: [0, 1, 2, 3], probabilities: [0.5, 0.25, 0.15, 0.1])
        let draft = TokenDistribution(tokens: [3, 2, 1, 0], probabilities: [0.4, 0.3, 0.2, 0.1])
        var parameters = SamplingParameters()
        parameters.temperature = 1
        parameters.seed = 2023
        var sampler = Sampler(parameters)
        let trials = 40_000
        var counts = [Int](repeating: 0, count: 16)
        for _ in 0..<trials {
            let drafts = (0..<2).map { _ in DraftToken(token: sampler.draw(from: draft), distribution: draft) }
            let verdict = SpeculativeSampling.verify(drafts, target: [target, target, target], sampler: &sampler)
            let emitted = drafts.prefix(verdict.accepted).map(\.token) + [verdict.next]
            counts[emitted[0] * 4 + (emitted.count > 1 ? emitted[1] : sampler.draw(from: target))] += 1
        }
        for a in 0..<4 {
            for b in 0..<4 {
                let expected = Double(target.probabilities[a] * target.probabilities[b])
                let observed = Double(counts[a * 4 + b]) / Double(trials)
                // Four standard errors of a binomial proportion.
                #expect(abs(observed - expected) < 4 * (expected * (1 - expected) / Double(trials)).squareRoot(),
                        "pair (\(a), \(b)): \(observed) vs \(expected)")
            }
        }
    }

    @Test func theResidualIsWhatTheDraftUnderweights() {
        let p = TokenDistribution(tokens: [0, 1, 2], probabilities: [0.6, 0.3, 0.1])
        let q = TokenDistribution(tokens: [1, 0], probabilities: [0.8, 0.2])
        let residual = p.residual(after: q)!
        #expect(residual.tokens == [0, 2])
        #expect(zip(residual.probabilities, [0.8, 0.2] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(p.residual(after: p) == nil)
    }
}

@Suite struct DraftPacingTests {
    /// Rounds weigh by the tokens they yield: one rejection amid long accepted drafts keeps
    /// drafting, a run of them pauses it.
    @Test func oneRejectedDraftAmidAcceptedOnesKeepsDrafting() {
        var pacing = DraftPacing()
        pacing.recordPlainStep(seconds: 0.024)
        pacing.recordRound(seconds: 0.104, tokens: 14, at: 14)
        pacing.recordRound(seconds: 0.104, tokens: 1, at: 15)  // 0.156 s / 8 tokens
        #expect(pacing.allowsDraft(at: 16))
        pacing.recordRound(seconds: 0.104, tokens: 1, at: 16)  // 0.182 / 5 = 0.036: still under twice 0.024
        #expect(pacing.allowsDraft(at: 17))
        pacing.recordRound(seconds: 0.104, tokens: 1, at: 17)  // 0.195 / 3.5 = 0.056
        #expect(!pacing.allowsDraft(at: 18), "a run of rejections pauses")
    }

    /// With a longer memory (a draft model's), the three rejections that pause the default
    /// pacing above do not; only a longer run does.
    @Test func aLongerMemoryWeighsMoreRounds() {
        var pacing = DraftPacing(memory: 0.875)
        pacing.recordPlainStep(seconds: 0.024)
        pacing.recordRound(seconds: 0.104, tokens: 14, at: 14)
        for at in 15...17 { pacing.recordRound(seconds: 0.104, tokens: 1, at: at) }  // 0.344 s / 12.0 tokens
        #expect(pacing.allowsDraft(at: 18))
        for at in 18...20 { pacing.recordRound(seconds: 0.104, tokens: 1, at: at) }  // 0.505 s / 10.7 tokens: just under 0.048
        #expect(pacing.allowsDraft(at: 21))
        pacing.recordRound(seconds: 0.104, tokens: 1, at: 21)  // 0.546 s / 10.4 tokens
        #expect(!pacing.allowsDraft(at: 22), "a long enough run of rejections pauses")
    }

    /// Rounds slower per token than plain steps pause drafting, for longer each time they lose;
    /// a winning round restores the shortest pause.
    @Test func pausesDraftingWhileItLosesToPlainSteps() {
        var pacing = DraftPacing()
        #expect(pacing.allowsDraft(at: 0))
        pacing.recordRound(seconds: 0.1, tokens: 1, at: 1)
        #expect(!pacing.allowsDraft(at: 2) && pacing.allowsDraft(at: 3), "one plain step first (the next token is the verdict's), to compare with")
        pacing.recordPlainStep(seconds: 0.02)
        pacing.recordRound(seconds: 0.1, tokens: 2, at: 10)  // (0.05 + 0.1) / (0.5 + 2) = 0.06 s per token: over twice 0.02
        #expect(!pacing.allowsDraft(at: 25) && pacing.allowsDraft(at: 26))
        pacing.recordRound(seconds: 0.1, tokens: 1, at: 26)
        #expect(!pacing.allowsDraft(at: 57) && pacing.allowsDraft(at: 58), "the pause doubles")
        pacing.recordRound(seconds: 0.1, tokens: 10, at: 70)  // 0.01 s per token: drafting wins
        #expect(pacing.allowsDraft(at: 71))
        pacing.recordRound(seconds: 0.1, tokens: 1, at: 80)  // 0.15 / 6 = 0.025: not twice as slow, goes on
        #expect(pacing.allowsDraft(at: 81))
        pacing.recordRound(seconds: 0.1, tokens: 1, at: 81)  // 0.175 / 4 = 0.044: pauses, shortest pause again
        #expect(!pacing.allowsDraft(at: 96) && pacing.allowsDraft(at: 97))
    }
}

@Suite struct PromptLookupTests {
    @Test func draftsWhatFollowedTheLatestEarlierOccurrence() {
        let history = [1, 2, 3, 9, 9, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3]
        // "1 2 3" last occurred at 5..<8, followed by 4 5 6 ...
        #expect(PromptLookupDraft.continuation(of: history, ngram: 3, minimumNgram: 1, count: 3) == [4, 5, 6])
        // Shorter n-grams when the long one is new: "8 3" never occurred, "3" did.
        #expect(PromptLookupDraft.continuation(of: [3, 4, 5, 8, 3], ngram: 2, minimumNgram: 1, count: 2) == [4, 5])
        #expect(PromptLookupDraft.continuation(of: [3, 4, 5, 8, 3], ngram: 2, minimumNgram: 2, count: 2) == [])
        #expect(PromptLookupDraft.continuation(of: [1, 2, 1], ngram: 3, minimumNgram: 1, count: 5) == [2, 1], "up to the end of the history")
        #expect(PromptLookupDraft.continuation(of: [5], ngram: 3, minimumNgram: 1, count: 5) == [])
    }
}

@Suite struct SpeculativeGenerationTests {
    private let code = """
        func fibonacci(_ n: Int) -> Int {
            if n < 2 { return n }
            return fibonacci(n - 1) + fibonacci(n - 2)
        }

        Rewrite the function above with the parameter named `count` instead of `n`:

        """

    /// Drafting at every step: pacing by measured time would make the counts depend on timing.
    private func everyStep(_ source: any DraftSource, maxDraft: Int, minDraft: Int = 0) -> SpeculationOptions {
        var options = SpeculationOptions(source: source, maxDraft: maxDraft, minDraft: minDraft)
        options.adaptive = false
        return options
    }

    private func generate(_ model: LanguageModel, prompt: [Int], speculation: SpeculationOptions?, sampling: SamplingParameters = .init(),
                          pool: ThreadPool) throws -> GenerationResult {
        var options = GenerationOptions()
        options.maxTokens = 48
        options.sampling = sampling
        options.speculation = speculation
        let session = Session(model: model.transformer, contextSize: 256, pool: pool)
        return try Generator(tokenizer: model.tokenizer, session: session).generate(prompt: prompt, options: options)
    }

    /// Greedy speculative decoding returns plain greedy decoding's tokens, for both draft
    /// sources, while verifying several drafted tokens per pass.
    @Test func greedyOutputIsPlainGreedyOutput() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(code)
        let plain = try generate(model, prompt: prompt, speculation: nil, pool: pool)
        let lookup = try generate(model, prompt: prompt, speculation: everyStep(PromptLookupDraft(), maxDraft: 8), pool: pool)
        #expect(lookup.generatedTokens == plain.generatedTokens)
        let stats = try #require(lookup.speculation)
        #expect(stats.accepted > 10, "the rewrite copies the prompt: \(stats)")
        // Only drafts of at least 6 tokens are verified: fewer passes, each with longer drafts.
        let long = try generate(model, prompt: prompt, speculation: everyStep(PromptLookupDraft(), maxDraft: 8, minDraft: 6),
                                pool: pool)
        #expect(long.generatedTokens == plain.generatedTokens)
        let longStats = try #require(long.speculation)
        #expect(longStats.verifications > 0 && longStats.drafted >= 6 * longStats.verifications, "\(longStats)")

        // The full head: SmolLM2's sketched head misses during its trial (tested on its own).
        let drafter = try DraftModel(model: model, target: model, contextSize: 256, pool: pool, headCandidates: 0)
        let drafted = try generate(model, prompt: prompt, speculation: everyStep(drafter, maxDraft: 4), pool: pool)
        #expect(drafted.generatedTokens == plain.generatedTokens)
        #expect(drafted.speculation!.acceptanceRate > 0.9, "a model drafting for itself is nearly always right")
    }

    /// A session with a shortlist computes exactly its candidates' logits, and only those.
    @Test func shortlistedLogitsAreTheFullLogitsAtThoseIds() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(code)
        let full = Session(model: model.transformer, contextSize: 256, pool: pool)
        let expected = Array(try full.evaluate(prompt).last)
        let restricted = Session(model: model.transformer, contextSize: 256, pool: pool)
        let ids: [Int32] = [0, 1, 7, 500, 501, 20000, Int32(model.transformer.vocabularySize - 1)]
        restricted.logitShortlist = FixedShortlist(ids: ids)
        let logits = Array(try restricted.evaluate(prompt).last)
        for (id, value) in logits.enumerated() {
            #expect(value == (ids.contains(Int32(id)) ? expected[id] : -.infinity), "id \(id)")
        }
    }

    /// On Qwen 0.5B a sketched head's candidates hold the full head's argmax at every step, so
    /// the draft drafts the full head's tokens and the sketch stays on; on SmolLM2, where the
    /// one-bit sketch ranks the argmax too low too often, the audits turn it off, and either
    /// way a model drafting for itself keeps plain greedy output.
    @Test(arguments: [("qwen2.5-coder-0.5b", true), ("smollm2-135m", false)])
    func aSketchedHeadDraftsTheFullHeadsTokensOrTurnsItselfOff(_ name: String, staysOn: Bool) throws {
        let model = try catalogModel(name)
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(code)
        var full = try DraftModel(model: model, target: model, contextSize: 256, pool: pool, headCandidates: 0)
        var sketched = try DraftModel(model: model, target: model, contextSize: 256, pool: pool)
        var sampler = Sampler(SamplingParameters())
        let expected = try full.draft(after: prompt, count: 40, sampler: &sampler).map(\.token)
        let drafts = try sketched.draft(after: prompt, count: 40, sampler: &sampler).map(\.token)
        let head = try #require(sketched.session.logitShortlist as? SketchedHead)
        #expect(head.isActive == staysOn && head.audits >= SketchedHead.trialSteps, "\(head.misses) of \(head.audits) audits missed")
        if staysOn { #expect(drafts == expected) }
        let plain = try generate(model, prompt: prompt, speculation: nil, pool: pool)
        let drafted = try generate(model, prompt: prompt, speculation: everyStep(sketched, maxDraft: 4), pool: pool)
        #expect(drafted.generatedTokens == plain.generatedTokens)
        #expect(drafted.speculation!.acceptanceRate > 0.9, "\(drafted.speculation!)")
    }

    /// A draft model that read the prompt in advance (as generation has it do while the prompt
    /// is processed) drafts exactly what one reading it on demand drafts, and so does one
    /// prepared again for a longer history.
    @Test func aPreparedDraftModelDraftsAsAnUnpreparedOne() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(code)
        var onDemand = try DraftModel(model: model, target: model, contextSize: 256, pool: pool)
        var prepared = try DraftModel(model: model, target: model, contextSize: 256, pool: pool)
        try prepared.prepare(for: prompt)
        #expect(prepared.session.count == prompt.count, "prepare reads the whole prompt")
        var sampler = Sampler(SamplingParameters())
        let expected = try onDemand.draft(after: prompt, count: 6, sampler: &sampler).map(\.token)
        #expect(try prepared.draft(after: prompt, count: 6, sampler: &sampler).map(\.token) == expected)
        // Prepared again for a longer history (the prompt and its first drafts), it still agrees.
        let longer = prompt + expected.prefix(3)
        try prepared.prepare(for: longer)
        #expect(try prepared.draft(after: longer, count: 3, sampler: &sampler).map(\.token) == Array(expected.suffix(3)))
    }

    /// A verification pass sums each row as a decode step does, so on a model with every
    /// kind of weight (Qwen 0.5B: Q4_K, Q6_K, Q5_0, Q8_0) its logits are bit for bit those of
    /// evaluating its tokens one at a time, for batches that fill 4, 8 and 16 lanes per row.
    @Test(arguments: [3, 6, 11])
    func verificationPassEqualsDecodeSteps(tokens: Int) throws {
        let model = try catalogModel("qwen2.5-coder-0.5b")
        let pool = ThreadPool(threadCount: 2)
        let prompt = model.promptTokens(code)
        let batch = Array(prompt.suffix(tokens)), context = Array(prompt.dropLast(tokens))
        let stepped = Session(model: model.transformer, contextSize: 512, pool: pool)
        try stepped.evaluate(context)
        let expected = try batch.map { Array(try stepped.evaluate([$0]).last) }
        let verified = Session(model: model.transformer, contextSize: 512, pool: pool)
        try verified.evaluate(context)
        let rows = try verified.evaluate(batch, logits: .all, order: .singleToken)
        for i in 0..<tokens { #expect(Array(rows[i]) == expected[i], "row \(i) of \(tokens)") }
    }

    /// So greedy speculation on a K-quant model keeps plain greedy decoding's tokens, also
    /// where text is new and drafts are often rejected (before verification summed as decode
    /// steps do, Qwen 0.5B drafting for itself left plain decoding's text on this prompt).
    @Test func speculationOnAKQuantModelKeepsPlainGreedyOutput() throws {
        let model = try catalogModel("qwen2.5-coder-0.5b")
        let pool = ThreadPool(threadCount: 2)
        let copy = try model.chatPromptTokens([ChatMessage(role: "user", content: "Repeat this code exactly:\n\n" + code)])
        let plainCopy = try generate(model, prompt: copy, speculation: nil, pool: pool)
        let lookup = try generate(model, prompt: copy, speculation: everyStep(PromptLookupDraft(), maxDraft: 15), pool: pool)
        #expect(lookup.generatedTokens == plainCopy.generatedTokens)
        #expect(lookup.speculation!.accepted > 10, "\(lookup.speculation!)")

        let story = try model.chatPromptTokens([ChatMessage(role: "user", content: "Write a short story about a lighthouse keeper.")])
        let plainStory = try generate(model, prompt: story, speculation: nil, pool: pool)
        let drafter = try DraftModel(model: model, target: model, contextSize: 256, pool: pool)
        let drafted = try generate(model, prompt: story, speculation: everyStep(drafter, maxDraft: 6), pool: pool)
        #expect(drafted.generatedTokens == plainStory.generatedTokens)
    }

    @Test func sampledSpeculationIsReproducibleAndStopsAtTheLimit() throws {
        let model = try catalogModel("smollm2-135m")
        let pool = ThreadPool(threadCount: 2)
        var sampling = SamplingParameters()
        sampling.temperature = 0.8
        sampling.topP = 0.95
        sampling.seed = 5
        let speculation = everyStep(PromptLookupDraft(), maxDraft: 8)
        let first = try generate(model, prompt: model.promptTokens(code), speculation: speculation, sampling: sampling, pool: pool)
        let second = try generate(model, prompt: model.promptTokens(code), speculation: speculation, sampling: sampling, pool: pool)
        #expect(first.generatedTokens == second.generatedTokens)
        #expect(first.generatedTokens.count <= 48)
    }

    @Test func aDraftModelWithAnotherVocabularyIsRefused() throws {
        let target = try catalogModel("smollm2-135m"), draft = try catalogModel("qwen2.5-coder-0.5b")
        #expect {
            try DraftModel(model: draft, target: target, contextSize: 64, pool: ThreadPool(threadCount: 1))
        } throws: { error in
            "\(error)".contains("vocabulary differs")
        }
    }
}

/// The same ids for every row.
private final class FixedShortlist: LogitShortlist {
    let ids: [Int32]
    init(ids: [Int32]) { self.ids = ids }
    func candidates(for hidden: UnsafePointer<Float>) -> [Int32]? { ids }
}
