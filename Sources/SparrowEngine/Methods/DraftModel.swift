import SparrowKernels

/// A smaller model of the same vocabulary drafts for the target, token by token, with the
/// generation's sampling settings. Its cache follows the accepted text: each round reuses
/// the prefix it shares with the history and drops rejected drafts.
public struct DraftModel: DraftSource {
    public let model: LanguageModel
    let session: Session
    /// Stop drafting once the draft's own top probability falls below this (0: never).
    public var minimumConfidence: Float
    private var draftSampler: Sampler?
    /// Drafts come from the ids below this and the tokens of the text so far (nil: the whole
    /// vocabulary): the output projection is the largest matrix of a small model (Qwen 0.5B:
    /// 37% of the bytes a step reads), and BPE vocabularies number their most common tokens
    /// first. A token outside is never drafted, which costs a rejected draft, never a wrong token.
    public let vocabularyLimit: Int?
    /// Ids at or above the limit seen in the text so far.
    private var rareTokens: Set<Int> = []

    /// - Throws: when the vocabularies differ (drafts would name other tokens).
    public init(model: LanguageModel, target: LanguageModel, contextSize: Int, pool: ThreadPool, minimumConfidence: Float = 0,
                vocabularyLimit: Int? = nil) throws {
        if let token = model.tokenizer.firstDifference(from: target.tokenizer) {
            throw EvaluationError(description: "the draft model's vocabulary differs from the target's (first at token \(token); "
                + "\(model.tokenizer.vocabularySize) vs \(target.tokenizer.vocabularySize) tokens): it cannot draft for it")
        }
        self.model = model
        self.minimumConfidence = minimumConfidence
        session = Session(model: model.transformer, contextSize: contextSize, pool: pool)
        self.vocabularyLimit = vocabularyLimit.map { min($0, model.transformer.vocabularySize) }
        if let limit = self.vocabularyLimit, limit < model.transformer.vocabularySize { session.logitTokens = (0..<Int32(limit)).map { $0 } }
    }

    /// Adds the history's rare tokens to the ids the draft computes logits for.
    private mutating func includeRareTokens(of history: [Int]) {
        guard let limit = vocabularyLimit, limit < session.model.vocabularySize else { return }
        let fresh = history.filter { $0 >= limit && !rareTokens.contains($0) }
        guard !fresh.isEmpty else { return }
        rareTokens.formUnion(fresh)
        session.logitTokens = (0..<Int32(limit)).map { $0 } + rareTokens.sorted().map { Int32($0) }
    }

    public mutating func prepare(for history: [Int]) throws {
        guard history.count < session.capacity else { return }
        _ = try catchUp(with: history)
    }

    /// Brings the cache to `history`, reusing the prefix it already holds and dropping the
    /// rest (at least history's last token is evaluated again); returns the logits after it.
    private mutating func catchUp(with history: [Int]) throws -> Logits {
        includeRareTokens(of: history)
        let reused = session.reusablePrefix(of: history)
        session.truncate(to: reused)
        return try session.evaluate(Array(history[reused...]))
    }

    public var name: String { "draft model \(model.file.path.split(separator: "/").last ?? "")" }

    public mutating func draft(after history: [Int], count: Int, sampler: inout Sampler) throws -> [DraftToken] {
        guard count > 0, history.count < session.capacity else { return [] }
        // Its own generator, seeded from the target's settings, so drafting does not shift the
        // target's random stream.
        if draftSampler == nil {
            var parameters = sampler.parameters
            parameters.seed = parameters.seed &+ 0x5EED
            draftSampler = Sampler(parameters)
        }
        var logits = try catchUp(with: history)
        var context = history
        var drafts: [DraftToken] = []
        while drafts.count < count {
            // Confidence is the draft's own softmax top probability: under greedy decoding the
            // distribution it draws from is certain whatever the logits say.
            guard minimumConfidence <= 0 || topProbability(logits.last) >= minimumConfidence else { break }
            let distribution = draftSampler!.distribution(logits.last, history: context)
            let token = draftSampler!.draw(from: distribution)
            drafts.append(DraftToken(token: token, distribution: distribution))
            context.append(token)
            guard drafts.count < count, session.count < session.capacity else { break }
            logits = try session.evaluate([token])
        }
        return drafts
    }
}
