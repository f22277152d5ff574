import Foundation
import SparrowTokenizer

/// What to generate after a prompt.
public struct GenerationOptions: Sendable {
    public var maxTokens = 256
    public var sampling = SamplingParameters()
    /// Generation ends when the text contains one of these; the text is cut before it.
    public var stopStrings: [String] = []
    /// Record log-probabilities at each generated position: the chosen token's and the
    /// `logprobs` most likely tokens' (nil: none).
    public var logprobs: Int?
    /// Chooses the prompt tokens to prefill (GemFilter or a baseline); nil prefills them all.
    public var promptFilter: (any PromptFilter)?
    /// Start from the prompt's longest prefix already in the session's cache. Its keys and
    /// values came from batches of other sizes, which sum in other orders, so a sampled reply
    /// may differ from a fresh run's with the same seed (as llama-server's `cache_prompt`).
    public var reusesCachedPrefix = true
    /// Drafts tokens for the model to verify several at a time (speculative decoding).
    public var speculation: SpeculationOptions?

    public init() {}
}

/// Why generation ended, named as in the OpenAI API.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-generation token or a stop string.
    case stop
    /// The token limit or the context size.
    case length
}

/// Wall-clock timings, named as llama-server names them.
public struct GenerationTimings: Sendable, Codable {
    public var promptTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    public var generationSeconds = 0.0
    /// With a prompt filter: the tokens it kept (the prefilled prompt) and the time it took.
    public var keptTokens: Int?
    public var filterSeconds = 0.0
    /// Leading prompt tokens the session's cache already held, not evaluated again.
    public var reusedTokens = 0

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var generationTokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
}

public struct GenerationResult: Sendable {
    public var promptTokens: [Int]
    /// With a prompt filter: the indices into `promptTokens` of the tokens it kept.
    public var keptIndices: [Int]?
    public var generatedTokens: [Int] = []
    public var text = ""
    public var finishReason = FinishReason.length
    /// With `logprobs`: per generated position, the chosen token's log-probability under the
    /// model's raw distribution, and the most likely tokens'.
    public var tokenLogprobs: [Float] = []
    public var topLogprobs: [[(token: Int, logProbability: Float)]] = []
    public var timings = GenerationTimings()
    /// With speculative decoding: how the drafts fared.
    public var speculation: SpeculationStats?
}

/// The decode loop: prefill the prompt, then sample, stream and stop.
public struct Generator {
    public let tokenizer: Tokenizer
    public let session: Session

    public init(tokenizer: Tokenizer, session: Session) {
        self.tokenizer = tokenizer
        self.session = session
    }

    /// Generates a continuation of `prompt` (token ids), calling `onText` with each piece of
    /// finished text as soon as it can no longer be part of a stop string. Whatever beginning
    /// of the (filtered) prompt the session's cache already holds is reused.
    public func generate(
        prompt: [Int], options: GenerationOptions, onText: (String) -> Void = { _ in }
    ) throws -> GenerationResult {
        var generation = try Generation(tokenizer: tokenizer, session: session, prompt: prompt, options: options)
        while generation.isRunning { try generation.advance(onText: onText) }
        return generation.finish(onText: onText)
    }
}

/// One generation in progress, advanced a round at a time: a chunk of the prompt, a decode
/// step, or a verification pass over drafts. `Generator.generate` runs one to its end; a
/// server interleaves several, each on its own session, which nothing else may evaluate on
/// until `finish`.
public struct Generation {
    public let options: GenerationOptions
    public private(set) var result: GenerationResult
    /// False once the reply has ended; `finish` then completes the result.
    public private(set) var isRunning = true
    private let tokenizer: Tokenizer
    private let session: Session
    private var sampler: Sampler
    private var detokenizer: StreamingDetokenizer
    private var stops: StopStringScanner
    private var history: [Int]
    private var drafter: SpeculationOptions?
    private var pacing: DraftPacing?
    /// Prompt tokens not yet evaluated; nil until the prompt filter and cache reuse ran.
    private var unprefilled: ArraySlice<Int>?
    /// The logits the next token is drawn from, in the session's buffer; nil during prefill.
    private var row: UnsafeBufferPointer<Float>?
    /// A token the verification already chose, not yet emitted.
    private var chosen: Int?
    private var stoppedByString = false
    private let start = DispatchTime.now()
    /// When the current round's drafting began (what pacing weighs a round by).
    private var roundStart = DispatchTime.now()
    private var prefillEnd: DispatchTime?

    public init(tokenizer: Tokenizer, session: Session, prompt: [Int], options: GenerationOptions) throws {
        guard !prompt.isEmpty else { throw EvaluationError(description: "the prompt is empty") }
        self.options = options
        self.tokenizer = tokenizer
        self.session = session
        result = GenerationResult(promptTokens: prompt)
        sampler = Sampler(options.sampling)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        stops = StopStringScanner(options.stopStrings)
        history = prompt
        drafter = options.speculation
        if drafter != nil { result.speculation = SpeculationStats() }
        // Sampled runs draft at every step: pacing by time would change which random numbers a
        // seed's run draws.
        pacing = drafter.flatMap { $0.adaptive && sampler.isGreedy ? DraftPacing(memory: $0.source.pacingMemory) : nil }
    }

    /// Runs one round, calling `onText` with any text it finishes.
    public mutating func advance(onText: (String) -> Void) throws {
        guard let token = try advanceToDecode(onText: onText) else { return }
        completeDecode(try session.evaluate([token]).last)
    }

    /// Runs a round up to its model evaluation where that is a plain decode step, and returns
    /// the token to evaluate: a caller that batches several generations' steps
    /// (`Session.decode(_:in:)`) then hands the logits to `completeDecode`. Other rounds
    /// (prompt chunks, verifications, the end) run whole and return nil.
    public mutating func advanceToDecode(onText: (String) -> Void) throws -> Int? {
        guard isRunning else { return nil }
        guard let row else {
            try prefillChunk()
            return nil
        }
        guard result.generatedTokens.count < options.maxTokens else {
            isRunning = false
            return nil
        }
        let token = chosen ?? sampler.sample(row, history: history)
        chosen = nil
        guard emit(token, from: row, onText: onText), session.count < session.capacity else {
            isRunning = false
            return nil
        }
        roundStart = DispatchTime.now()
        let paced = pacing?.allowsDraft(at: result.generatedTokens.count) ?? true
        let room = paced ? min(drafter?.maxDraft ?? 0, options.maxTokens - result.generatedTokens.count - 1, session.capacity - session.count - 1) : 0
        var drafts = try room > 0 ? drafter!.source.draft(after: history, count: room, sampler: &sampler) : []
        if drafts.count < drafter?.minDraft ?? 0 { drafts = [] }
        guard !drafts.isEmpty else { return token }
        // One pass over the token and its drafts gives the distribution after each prefix,
        // summed as single steps would sum it: greedy keeps exactly plain decoding's tokens.
        let base = session.count
        let rows = try session.evaluate([token] + drafts.map(\.token), logits: .all, order: .singleToken)
        let targets = (0...drafts.count).map { sampler.distribution(rows[$0], history: history + drafts[..<$0].map(\.token)) }
        let verdict = SpeculativeSampling.verify(drafts, target: targets, sampler: &sampler)
        result.speculation!.drafted += drafts.count
        result.speculation!.accepted += verdict.accepted
        result.speculation!.verifications += 1
        session.truncate(to: base + 1 + verdict.accepted)
        for (i, draft) in drafts.prefix(verdict.accepted).enumerated() where isRunning {
            isRunning = emit(draft.token, from: rows[i], onText: onText)
        }
        guard isRunning else { return nil }
        chosen = verdict.next
        self.row = rows[verdict.accepted]
        pacing?.recordRound(seconds: seconds(roundStart, DispatchTime.now()), tokens: verdict.accepted + 1, at: result.generatedTokens.count)
        return nil
    }

    /// Takes the logits of the decode step `advanceToDecode` asked for.
    public mutating func completeDecode(_ logits: UnsafeBufferPointer<Float>) {
        row = logits
        pacing?.recordPlainStep(seconds: seconds(roundStart, DispatchTime.now()))
    }

    /// Ends the generation (early, if it is still running): releases held-back text and
    /// completes the result.
    public mutating func finish(onText: (String) -> Void) -> GenerationResult {
        isRunning = false
        if !stoppedByString {
            stoppedByString = stops.append(detokenizer.finish(), emit: onText)
        }
        if stoppedByString { result.finishReason = .stop }
        stops.flush(emit: onText)
        result.text = stops.text
        result.timings.generatedTokens = result.generatedTokens.count
        result.timings.generationSeconds = prefillEnd.map { seconds($0, DispatchTime.now()) } ?? 0
        return result
    }

    /// Filters the prompt and finds the cached prefix (first call), then evaluates one chunk.
    private mutating func prefillChunk() throws {
        if unprefilled == nil {
            let prompt = result.promptTokens
            var prefilled = prompt
            if let filter = options.promptFilter {
                let kept = try filter.keptIndices(of: prompt, model: session.model, pool: session.pool)
                guard !kept.isEmpty else { throw EvaluationError(description: "the prompt filter \(filter.name) kept no tokens") }
                prefilled = kept.map { prompt[$0] }
                result.keptIndices = kept
                result.timings.keptTokens = kept.count
                result.timings.filterSeconds = seconds(start, DispatchTime.now())
            }
            guard prefilled.count < session.capacity else {
                throw EvaluationError(description: "the prompt has \(prefilled.count) tokens but the context holds \(session.capacity); raise --ctx-size or shorten the prompt")
            }
            let reused = options.reusesCachedPrefix ? session.reusablePrefix(of: prefilled) : 0
            session.truncate(to: reused)
            result.timings.reusedTokens = reused
            unprefilled = prefilled[reused...]
        }
        let chunk = unprefilled!.prefix(session.batchCapacity)
        unprefilled!.removeFirst(chunk.count)
        let logits = try session.evaluate(Array(chunk))
        guard unprefilled!.isEmpty else { return }
        try drafter?.source.prepare(for: history)
        row = logits.last
        let end = DispatchTime.now()
        prefillEnd = end
        result.timings.promptTokens = result.promptTokens.count
        result.timings.promptSeconds = seconds(start, end)
    }

    /// Takes `token`, chosen from `row`'s logits, into the reply; false when the reply ends.
    private mutating func emit(_ token: Int, from row: UnsafeBufferPointer<Float>, onText: (String) -> Void) -> Bool {
        if tokenizer.isEndOfGeneration(token) {
            result.finishReason = .stop
            return false
        }
        if let top = options.logprobs {
            result.tokenLogprobs.append(row[token] - logSoftmaxNormaliser(row))
            if top > 0 { result.topLogprobs.append(topLogProbabilities(row, count: top)) }
        }
        result.generatedTokens.append(token)
        history.append(token)
        if stops.append(detokenizer.append(token), emit: onText) {
            stoppedByString = true
            return false
        }
        return result.generatedTokens.count < options.maxTokens
    }
}

/// Seconds from `a` to `b`.
private func seconds(_ a: DispatchTime, _ b: DispatchTime) -> Double {
    Double(b.uptimeNanoseconds - a.uptimeNanoseconds) / 1e9
}

/// Accumulates generated text, finds stop strings in it, and releases text only once no stop
/// string can begin inside it.
public struct StopStringScanner {
    public let stopStrings: [String]
    public private(set) var text = ""
    private var emitted: String.Index

    public init(_ stopStrings: [String]) {
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
        emitted = text.startIndex
    }

    /// Appends `piece`; returns true when a stop string was found (the text then ends before it).
    public mutating func append(_ piece: String, emit: (String) -> Void) -> Bool {
        let offset = text.distance(from: text.startIndex, to: emitted)
        text += piece
        emitted = text.index(text.startIndex, offsetBy: offset)
        if let match = stopStrings.compactMap({ text.range(of: $0, range: emitted..<text.endIndex) })
            .min(by: { $0.lowerBound < $1.lowerBound }) {
            text = String(text[..<match.lowerBound])
            emitted = text.index(text.startIndex, offsetBy: min(offset, text.count))
            return true
        }
        let safeEnd = text.index(text.endIndex, offsetBy: -heldBackCount())
        if safeEnd > emitted {
            emit(String(text[emitted..<safeEnd]))
            emitted = safeEnd
        }
        return false
    }

    /// Emits whatever is still held back.
    public mutating func flush(emit: (String) -> Void) {
        if emitted < text.endIndex { emit(String(text[emitted...])) }
        emitted = text.endIndex
    }

    /// Characters at the end of the text that could start a stop string.
    private func heldBackCount() -> Int {
        var longest = 0
        for stop in stopStrings {
            for length in stride(from: min(stop.count - 1, text.count), to: longest, by: -1)
            where text.hasSuffix(stop.prefix(length)) {
                longest = length
                break
            }
        }
        return longest
    }
}
