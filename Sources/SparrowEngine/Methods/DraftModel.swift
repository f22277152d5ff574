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

    /// - Throws: when the vocabularies differ (drafts would name other tokens).
    /// - Parameter headCandidates: tokens per step whose logits are computed exactly, the rest
    ///   ranked by a `SketchedHead` (0: the whole output projection).
    public init(model: LanguageModel, target: LanguageModel, contextSize: Int, pool: ThreadPool, minimumConfidence: Float = 0,
                headCandidates: Int = SketchedHead.defaultCandidates) throws {
        if let token = model.tokenizer.firstDifference(from: target.tokenizer) {
            throw EvaluationError(description: "the draft model's vocabulary differs from the target's (first at token \(token); "
                + "\(model.tokenizer.vocabularySize) vs \(target.tokenizer.vocabularySize) tokens): it cannot draft for it")
        }
        self.model = model
        self.minimumConfidence = minimumConfidence
        session = Session(model: model.transformer, contextSize: contextSize, pool: pool)
        if headCandidates > 0 { session.logitShortlist = SketchedHead(output: model.transformer.output, candidates: headCandidates, pool: pool) }
    }

    public mutating func prepare(for history: [Int]) throws {
        guard history.count < session.capacity else { return }
        _ = try catchUp(with: history)
    }

    /// Brings the cache to `history`, reusing the prefix it already holds and dropping the
    /// rest (at least history's last token is evaluated again); returns the logits after it.
    private mutating func catchUp(with history: [Int]) throws -> Logits {
        let reused = session.reusablePrefix(of: history)
        session.truncate(to: reused)
        return try session.evaluate(Array(history[reused...]))
    }

    public var name: String { "draft model \(model.file.path.split(separator: "/").last ?? "")" }

    /// A model's misses are noise around its acceptance rate: pacing judges it over about
    /// eight rounds, not two (on code completion, Qwen 0.5B for 1.5B paused for 16 tokens after
    /// two poor rounds and lost 1.30-1.44x -> 1.19-1.24x that way).
    public var pacingMemory: Double { 0.875 }

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
