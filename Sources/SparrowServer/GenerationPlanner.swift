import Foundation
import SparrowEngine
import SparrowKernels

/// Turns a request's generation fields and Sparrow extension into what the scheduler runs,
/// refusing (as a 400) anything out of range or beyond the context before it is queued.
struct GenerationPlanner: Sendable {
    let model: LanguageModel
    let contextSize: Int
    let defaults: SparrowExtension
    let hasDraftModel: Bool
    let sparsity: SparsityMethods?
    /// The model file's digest, which finds its calibrated GemFilter layer.
    let modelSHA256: String

    /// What the handler needs besides the scheduler's request.
    struct Plan {
        var request: InferenceRequest
        var stream: Bool
        var includeUsage: Bool
    }

    /// - Parameter logprobs: nil for none, else how many alternatives per position.
    func plan(prompt: [Int], fields: GenerationFields, logprobs: Int?) throws(APIError) -> Plan {
        guard !prompt.isEmpty else { throw .invalidRequest("the prompt is empty") }
        if let bad = prompt.first(where: { !(0..<model.tokenizer.vocabularySize).contains($0) }) {
            throw .invalidRequest("token id \(bad) is outside the vocabulary 0..<\(model.tokenizer.vocabularySize)")
        }
        if let n = fields.n, n != 1 { throw .invalidRequest("only n = 1 is supported") }
        var options = GenerationOptions()
        options.sampling = try sampling(fields)
        options.stopStrings = fields.stop?.values ?? []
        if options.stopStrings.contains("") { throw .invalidRequest("stop strings must not be empty") }
        if let logprobs, !(0...20).contains(logprobs) { throw .invalidRequest("top_logprobs must be within 0...20") }
        options.logprobs = logprobs
        options.reusesCachedPrefix = fields.cachePrompt ?? true

        var request = InferenceRequest(prompt: prompt, options: options)
        let methods = defaults.overridden(by: fields.sparrow)
        if let settings = methods.gemfilter?.settings {
            request.options.promptFilter = try gemFilter(settings)
        }
        try speculation(methods, into: &request)
        if let settings = methods.sparsity?.settings {
            guard let sparsity else { throw .invalidRequest("contextual sparsity needs a sidecar: start the server with --sparsity") }
            request.decodeFeedForward = try sparsity.method(settings)
        }

        let prefilled = request.options.promptFilter.map { min(prompt.count, $0.keep) } ?? prompt.count
        guard prefilled < contextSize else {
            throw .invalidRequest("the prompt has \(prefilled) tokens but the context holds \(contextSize); shorten it or start the server with a larger --ctx-size",
                                  code: "context_length_exceeded")
        }
        if let maxTokens = fields.maxTokens ?? fields.maxCompletionTokens {
            guard maxTokens >= 1 else { throw .invalidRequest("max_tokens must be at least 1") }
            guard prefilled + maxTokens <= contextSize else {
                throw .invalidRequest("max_tokens \(maxTokens) plus the prompt's \(prefilled) tokens exceed the context of \(contextSize) tokens",
                                      code: "context_length_exceeded")
            }
            request.options.maxTokens = maxTokens
        } else {
            request.options.maxTokens = contextSize - prefilled
        }
        return Plan(request: request, stream: fields.stream ?? false, includeUsage: fields.streamOptions?.includeUsage ?? false)
    }

    /// OpenAI's defaults: temperature 1, no truncation.
    private func sampling(_ fields: GenerationFields) throws(APIError) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.temperature = fields.temperature ?? 1
        sampling.topP = fields.topP ?? 1
        sampling.topK = fields.topK ?? 0
        sampling.minP = fields.minP ?? 0
        sampling.repeatPenalty = fields.repeatPenalty ?? 1
        if let seed = fields.seed { sampling.seed = UInt64(bitPattern: seed) }
        guard sampling.temperature >= 0 else { throw .invalidRequest("temperature must be 0 or more") }
        guard sampling.topP > 0 && sampling.topP <= 1 else { throw .invalidRequest("top_p must be within (0, 1]") }
        guard sampling.topK >= 0 else { throw .invalidRequest("top_k must be 0 or more") }
        guard (0...1).contains(sampling.minP) else { throw .invalidRequest("min_p must be within [0, 1]") }
        guard sampling.repeatPenalty > 0 else { throw .invalidRequest("repeat_penalty must be positive") }
        return sampling
    }

    private func gemFilter(_ s: GemFilterSettings) throws(APIError) -> GemFilter {
        let keep = s.keep ?? 1024, edges = s.keepEdges ?? 0, window = s.window ?? 1
        guard keep >= 1 else { throw .invalidRequest("sparrow.gemfilter.keep must be at least 1") }
        guard (0..<keep).contains(edges) else { throw .invalidRequest("sparrow.gemfilter.keep_edges must be within 0..<keep") }
        guard (1...512).contains(window) else { throw .invalidRequest("sparrow.gemfilter.window must be within 1...512") }
        if let w = s.attentionWindow, w < 1 { throw .invalidRequest("sparrow.gemfilter.attention_window must be at least 1") }
        let scoringName = s.scoring ?? GemFilter.Scoring.raw.rawValue
        guard let scoring = GemFilter.Scoring(rawValue: scoringName) else {
            throw .invalidRequest("sparrow.gemfilter.scoring must be one of \(GemFilter.Scoring.allCases.map(\.rawValue))")
        }
        let filter = GemFilter(layer: 0, keep: keep, trailingWindow: edges, scoring: scoring, queryWindow: window, attentionWindow: s.attentionWindow)
        do {
            return try filter.placed(in: model, layer: s.layer, modelSHA256: modelSHA256)
        } catch {
            throw .invalidRequest("sparrow.gemfilter: \(error)")
        }
    }

    private func speculation(_ methods: SparrowExtension, into request: inout InferenceRequest) throws(APIError) {
        let lookup = methods.lookup?.settings, draft = methods.draft?.settings
        if lookup != nil && draft != nil { throw .invalidRequest("choose sparrow.lookup or sparrow.draft, not both") }
        if let lookup {
            let ngram = lookup.ngram ?? 3, minNgram = lookup.minNgram ?? 1
            guard ngram >= 1 else { throw .invalidRequest("sparrow.lookup.ngram must be at least 1") }
            guard (1...ngram).contains(minNgram) else { throw .invalidRequest("sparrow.lookup.min_ngram must be within 1...ngram") }
            let (maxDraft, minDraft) = try draftLengths(lookup.draftMax, lookup.draftMin, method: "lookup")
            request.options.speculation = SpeculationOptions(source: PromptLookupDraft(ngram: ngram, minimumNgram: minNgram), maxDraft: maxDraft, minDraft: minDraft)
        }
        if let draft {
            guard hasDraftModel else { throw .invalidRequest("sparrow.draft needs a draft model: start the server with --draft-model") }
            let (maxDraft, minDraft) = try draftLengths(draft.draftMax, draft.draftMin, method: "draft")
            let minP = draft.minP ?? 0
            guard (0...1).contains(minP) else { throw .invalidRequest("sparrow.draft.min_p must be within 0...1") }
            request.draftModel = (maxDraft, minDraft, minP)
        }
    }

    /// The draft lengths, defaulting as the CLI does (7 and 0).
    private func draftLengths(_ maxDraft: Int?, _ minDraft: Int?, method: String) throws(APIError) -> (Int, Int) {
        let maxDraft = maxDraft ?? 7, minDraft = minDraft ?? 0
        guard maxDraft >= 1 else { throw .invalidRequest("sparrow.\(method).draft_max must be at least 1") }
        guard (0...maxDraft).contains(minDraft) else { throw .invalidRequest("sparrow.\(method).draft_min must be within 0...draft_max") }
        return (maxDraft, minDraft)
    }
}

/// Contextual sparsity at the levels requests ask for, built once per rule and level (each
/// holds transposed weights) and shared by every slot: the engine thread runs one at a time.
final class SparsityMethods: @unchecked Sendable {
    private let model: LanguageModel
    private let sidecar: SparsitySidecar
    private let pool: ThreadPool
    private var built: [String: ContextualSparsity] = [:]
    private let lock = NSLock()

    init(model: LanguageModel, sidecar: SparsitySidecar, pool: ThreadPool) {
        self.model = model
        self.sidecar = sidecar
        self.pool = pool
    }

    func method(_ settings: SparsitySettings) throws(APIError) -> ContextualSparsity {
        let ruleName = settings.rule ?? SparsityRule.predictor.rawValue, level = settings.level ?? 0.5
        guard let rule = SparsityRule(rawValue: ruleName) else {
            throw .invalidRequest("sparrow.sparsity.rule must be one of \(SparsityRule.allCases.map(\.rawValue))")
        }
        guard (0..<1).contains(level) else { throw .invalidRequest("sparrow.sparsity.level must be within 0..<1") }
        let candidates = settings.headCandidates ?? 0, rank = settings.headRank ?? 128, up = settings.upLevel ?? 0
        lock.lock()
        defer { lock.unlock() }
        let key = "\(rule.rawValue)@\(level)/\(candidates)@\(rank)/up\(up)"
        if let method = built[key] { return method }
        do {
            let method = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: rule, sparsity: level,
                                                headCandidates: candidates, headRank: rank, upSparsity: up, pool: pool)
            built[key] = method
            return method
        } catch {
            throw .invalidRequest("sparrow.sparsity: \(error)")
        }
    }
}
