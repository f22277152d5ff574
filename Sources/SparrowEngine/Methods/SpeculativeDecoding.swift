/// Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a cheap source drafts a few
/// tokens, the target model scores all of them in one forward pass, and a rejection rule keeps
/// the longest prefix the target agrees with, so the output has exactly the target's
/// distribution (and, greedy, exactly its tokens) while several tokens cost about one pass.

/// A drafted token with the distribution it was drawn from (`.certain` when chosen
/// deterministically, as prompt lookup and greedy drafting do).
public struct DraftToken: Sendable, Equatable {
    public let token: Int
    public let distribution: TokenDistribution

    public init(token: Int, distribution: TokenDistribution) {
        self.token = token
        self.distribution = distribution
    }
}

/// Proposes tokens to follow a sequence.
public protocol DraftSource: Sendable {
    /// A short name for reports.
    var name: String { get }
    /// Up to `count` tokens likely to follow `history`; `sampler` has the generation's
    /// sampling settings (drafts drawn from a model use them too).
    mutating func draft(after history: [Int], count: Int, sampler: inout Sampler) throws -> [DraftToken]
    /// Called once the prompt is prefilled, with the prompt: a source with its own model reads
    /// it now, as prompt processing, rather than inside the first round of decoding.
    mutating func prepare(for history: [Int]) throws
    /// How much of the past `DraftPacing` keeps per round: little for a source whose worth
    /// changes with the text (lookup: copying or not), more for one whose misses are noise
    /// around a steady rate (a draft model), so that a few misses in a row do not pause it.
    var pacingMemory: Double { get }
}

extension DraftSource {
    public mutating func prepare(for history: [Int]) throws {}
    public var pacingMemory: Double { DraftPacing.defaultMemory }
}

/// How a generation drafts.
public struct SpeculationOptions: Sendable {
    public var source: any DraftSource
    /// The most tokens drafted per verification pass.
    public var maxDraft: Int
    /// Drafts shorter than this are dropped and the step decodes plainly: a pass over 2 tokens
    /// costs about as much as two single steps (measured on Qwen 1.5B), so a one-token draft
    /// cannot gain, and a caller who knows its drafts are usually wrong when short can say so.
    public var minDraft: Int
    /// Greedy only: stop drafting for a while when drafting and verifying measure slower per
    /// token than plain decode steps (see `DraftPacing`); false drafts at every step. Sampled
    /// runs always draft at every step, so that a seed reproduces them.
    public var adaptive = true

    public init(source: any DraftSource, maxDraft: Int, minDraft: Int = 0) {
        self.source = source
        self.maxDraft = maxDraft
        self.minDraft = minDraft
    }
}

/// Drafts only while drafting pays, by measured time: the seconds rounds take (drafting,
/// verifying) over the tokens they yield, each older round weighing `memory` times as much as
/// the next (half, by default), against plain decode steps' seconds per token. So one
/// rejected draft amid long accepted ones does not stop drafting, a run of them does. When
/// rounds are more than twice as slow, drafting pauses for 16 tokens, doubling up to 256
/// while it keeps losing, then a fresh round probes again. Text the source cannot predict
/// (prompt lookup on new prose) then costs little more than plain decoding.
struct DraftPacing {
    private var plainSecondsPerToken: Double?
    private var roundSeconds = 0.0, roundTokens = 0.0
    private var resumeAt = 0
    private var pause = Self.firstPause
    static let firstPause = 16, longestPause = 256
    static let defaultMemory = 0.5
    /// How much of the past a new measurement keeps.
    let decay: Double

    init(memory: Double = Self.defaultMemory) { decay = memory }
    /// Only a clear loss pauses: a pause also forgoes what a copy stream's next drafts would
    /// have yielded (measured: pausing at parity cut a word-for-word quote from 2.4x to 1.8x).
    static let losingFactor = 2.0

    func allowsDraft(at generated: Int) -> Bool { generated >= resumeAt }

    mutating func recordPlainStep(seconds: Double) {
        plainSecondsPerToken = plainSecondsPerToken.map { decay * $0 + (1 - decay) * seconds } ?? seconds
    }

    mutating func recordRound(seconds: Double, tokens: Int, at generated: Int) {
        roundSeconds = decay * roundSeconds + seconds
        roundTokens = decay * roundTokens + Double(tokens)
        guard let plain = plainSecondsPerToken else {
            resumeAt = generated + 2  // the next check comes after one more token: one plain step to compare with
            return
        }
        if roundSeconds / roundTokens > Self.losingFactor * plain {
            resumeAt = generated + pause
            pause = min(2 * pause, Self.longestPause)
            (roundSeconds, roundTokens) = (0, 0)  // the probe after the pause is judged on its own
        } else {
            pause = Self.firstPause
        }
    }
}

/// Counts over one generation.
public struct SpeculationStats: Sendable, Codable, Equatable {
    public var drafted = 0
    public var accepted = 0
    /// Target forward passes that verified at least one drafted token.
    public var verifications = 0

    public var acceptanceRate: Double { drafted > 0 ? Double(accepted) / Double(drafted) : 0 }
    /// Drafted tokens accepted per verification pass.
    public var meanAcceptedLength: Double { verifications > 0 ? Double(accepted) / Double(verifications) : 0 }
}

public enum SpeculativeSampling {
    /// The outcome of checking drafts against the target's distributions at the same positions
    /// (`target[i]` follows the drafts before i; `target[drafts.count]` follows them all).
    public struct Verdict: Equatable {
        /// How many drafts are kept, from the first.
        public let accepted: Int
        /// The token after them: the target's correction of the first rejected draft, or,
        /// when every draft stands, a bonus token drawn from the last distribution.
        public let next: Int
    }

    /// Accepts draft i with probability min(1, p(x)/q(x)); on the first rejection draws from the
    /// normalised residual max(0, p - q). With greedy targets (p certain) this keeps exactly the
    /// drafts equal to the target's argmax and then takes the argmax.
    public static func verify(_ drafts: [DraftToken], target: [TokenDistribution], sampler: inout Sampler) -> Verdict {
        precondition(target.count == drafts.count + 1, "one target distribution per draft plus the bonus")
        for (i, draft) in drafts.enumerated() {
            let p = target[i].probability(of: draft.token), q = draft.distribution.probability(of: draft.token)
            let ratio = q > 0 ? p / q : 0
            // Certain outcomes draw no random number, so greedy runs never touch the generator.
            if ratio >= 1 || (ratio > 0 && sampler.uniform() < ratio) { continue }
            return Verdict(accepted: i, next: sampler.draw(from: target[i].residual(after: draft.distribution) ?? target[i]))
        }
        return Verdict(accepted: drafts.count, next: sampler.draw(from: target[drafts.count]))
    }
}
