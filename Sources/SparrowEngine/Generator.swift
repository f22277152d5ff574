import Foundation
import SparrowTokenizer

/// What to generate after a prompt.
public struct GenerationOptions: Sendable {
    public var maxTokens = 256
    public var sampling = SamplingParameters()
    /// Generation ends when the text contains one of these; the text is cut before it.
    public var stopStrings: [String] = []
    /// How many top log-probabilities to record per generated position (0: none).
    public var logprobs = 0
    /// Chooses the prompt tokens to prefill (GemFilter or a baseline); nil prefills them all.
    public var promptFilter: (any PromptFilter)?

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
    /// Per generated position, the most likely tokens under the model's raw distribution.
    public var topLogprobs: [[(token: Int, logProbability: Float)]] = []
    public var timings = GenerationTimings()
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
        guard !prompt.isEmpty else { throw EvaluationError(description: "the prompt is empty") }
        var result = GenerationResult(promptTokens: prompt)
        var sampler = Sampler(options.sampling)
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        var stops = StopStringScanner(options.stopStrings)
        var history = prompt

        let start = DispatchTime.now()
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
        let reused = session.reusablePrefix(of: prefilled)
        session.truncate(to: reused)
        result.timings.reusedTokens = reused
        var logits = try session.evaluate(Array(prefilled[reused...]))
        let prefillEnd = DispatchTime.now()
        result.timings.promptTokens = prompt.count
        result.timings.promptSeconds = seconds(start, prefillEnd)

        var stoppedByString = false
        while result.generatedTokens.count < options.maxTokens {
            if options.logprobs > 0 {
                result.topLogprobs.append(topLogProbabilities(logits.last, count: options.logprobs))
            }
            let token = sampler.sample(logits.last, history: history)
            if tokenizer.isEndOfGeneration(token) {
                if options.logprobs > 0 { result.topLogprobs.removeLast() }
                result.finishReason = .stop
                break
            }
            result.generatedTokens.append(token)
            history.append(token)
            if stops.append(detokenizer.append(token), emit: onText) {
                stoppedByString = true
                break
            }
            guard result.generatedTokens.count < options.maxTokens, session.count < session.capacity else { break }
            logits = try session.evaluate([token])
        }
        if !stoppedByString {
            stoppedByString = stops.append(detokenizer.finish(), emit: onText)
        }
        if stoppedByString { result.finishReason = .stop }
        stops.flush(emit: onText)
        result.text = stops.text
        result.timings.generatedTokens = result.generatedTokens.count
        result.timings.generationSeconds = seconds(prefillEnd, DispatchTime.now())
        return result
    }

    private func seconds(_ a: DispatchTime, _ b: DispatchTime) -> Double {
        Double(b.uptimeNanoseconds - a.uptimeNanoseconds) / 1e9
    }
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
