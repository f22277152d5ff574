import Foundation

/// The JSON shape of one generation, with llama-server's timing names.
public struct GenerationReport: Encodable {
    let promptTokens: [Int]
    let generatedTokens: [Int]
    let text: String
    let finishReason: FinishReason
    let topLogprobs: [[TokenLogprob]]?
    let timings: Timings
    let peakRssBytes: Int
    let speculation: Speculation?

    struct Speculation: Encodable {
        let drafted: Int
        let accepted: Int
        let acceptanceRate: Double
        let meanAcceptedLength: Double
        /// With a plain run of the same prompt beside it: its decode speed, the ratio, and
        /// whether both generated the same tokens (with greedy decoding they must).
        let plainPredictedPerSecond: Double?
        let speedup: Double?
        let sameTokensAsPlain: Bool?
    }

    struct TokenLogprob: Encodable {
        let token: Int
        let logprob: Float

        /// Encoded as a `[id, logprob]` pair.
        func encode(to encoder: Encoder) throws {
            var pair = encoder.unkeyedContainer()
            try pair.encode(token)
            try pair.encode(logprob)
        }
    }

    /// Also the `timings` of the server's responses, as llama-server reports them.
    public struct Timings: Encodable, Sendable {
        let promptN: Int
        let promptMs: Double
        let promptPerSecond: Double
        let predictedN: Int
        let predictedMs: Double
        let predictedPerSecond: Double
        /// Time to first token (equal to prompt_ms, which includes any filter).
        let ttftMs: Double
        /// With a prompt filter: the tokens it kept, its time, the prefill of the kept tokens
        /// (the two add up to prompt_ms), and whether it skipped a prompt within its budget.
        let keptN: Int?
        let filterMs: Double?
        let prefillMs: Double?
        let filterSkipped: Bool?
        /// Leading prompt tokens taken from the cache instead of evaluated.
        let cacheN: Int

        // Spelled out so encoders without a key strategy (the server's) write the same names.
        enum CodingKeys: String, CodingKey {
            case promptN = "prompt_n", promptMs = "prompt_ms", promptPerSecond = "prompt_per_second"
            case predictedN = "predicted_n", predictedMs = "predicted_ms", predictedPerSecond = "predicted_per_second"
            case ttftMs = "ttft_ms", keptN = "kept_n", filterMs = "filter_ms", prefillMs = "prefill_ms", filterSkipped = "filter_skipped"
            case cacheN = "cache_n"
        }

        public init(_ t: GenerationTimings) {
            promptN = t.promptTokens
            promptMs = t.promptSeconds * 1000
            promptPerSecond = t.promptTokensPerSecond
            predictedN = t.generatedTokens
            predictedMs = t.generationSeconds * 1000
            predictedPerSecond = t.generationTokensPerSecond
            ttftMs = t.promptSeconds * 1000
            keptN = t.keptTokens
            filterMs = t.keptTokens.map { _ in t.filterSeconds * 1000 }
            prefillMs = t.keptTokens.map { _ in (t.promptSeconds - t.filterSeconds) * 1000 }
            filterSkipped = t.keptTokens.map { $0 >= t.promptTokens }
            cacheN = t.reusedTokens
        }
    }

    /// - Parameter plain: the same prompt decoded without speculation, for the speed ratio.
    public init(_ result: GenerationResult, peakResidentBytes: Int, plain: GenerationResult? = nil) {
        promptTokens = result.promptTokens
        generatedTokens = result.generatedTokens
        text = result.text
        finishReason = result.finishReason
        topLogprobs = result.topLogprobs.isEmpty ? nil : result.topLogprobs.map { $0.map { TokenLogprob(token: $0.token, logprob: $0.logProbability) } }
        let t = result.timings
        timings = Timings(t)
        peakRssBytes = peakResidentBytes
        speculation = result.speculation.map { stats in
            let plainSpeed = plain?.timings.generationTokensPerSecond
            return Speculation(drafted: stats.drafted, accepted: stats.accepted, acceptanceRate: stats.acceptanceRate,
                               meanAcceptedLength: stats.meanAcceptedLength, plainPredictedPerSecond: plainSpeed,
                               speedup: plainSpeed.map { $0 > 0 ? t.generationTokensPerSecond / $0 : 0 },
                               sameTokensAsPlain: plain.map { $0.generatedTokens == result.generatedTokens })
        }
    }

    public func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
