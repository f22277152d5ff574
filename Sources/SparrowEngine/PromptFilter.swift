import SparrowKernels

/// Chooses which prompt tokens the full model prefills: the seam through which GemFilter and
/// its baselines plug into generation. The kept tokens become a fresh prompt at positions
/// 0..<kept.count.
public protocol PromptFilter: Sendable {
    /// A short name for reports.
    var name: String { get }
    /// The most tokens it keeps (what the prefill cache must hold).
    var keep: Int { get }
    /// Ascending indices into `prompt` of the tokens to keep.
    func keptIndices(of prompt: [Int], model: TransformerModel, pool: ThreadPool) throws -> [Int]
}

/// Baseline: keep only the last `keep` tokens.
public struct LastTokensFilter: PromptFilter {
    public let keep: Int
    public init(keep: Int) { self.keep = keep }
    public var name: String { "last-\(keep)" }

    public func keptIndices(of prompt: [Int], model: TransformerModel, pool: ThreadPool) throws -> [Int] {
        Array(max(0, prompt.count - keep)..<prompt.count)
    }
}

/// Baseline: keep the first `sinks` tokens (attention sinks) and the last `keep - sinks`.
public struct AttentionSinksFilter: PromptFilter {
    public let keep: Int
    public let sinks: Int
    public init(keep: Int, sinks: Int = 4) {
        self.keep = keep
        self.sinks = min(sinks, keep)
    }
    public var name: String { "sinks-\(sinks)+last-\(keep - sinks)" }

    public func keptIndices(of prompt: [Int], model: TransformerModel, pool: ThreadPool) throws -> [Int] {
        guard prompt.count > keep else { return Array(prompt.indices) }
        return Array(0..<sinks) + Array((prompt.count - (keep - sinks))..<prompt.count)
    }
}
