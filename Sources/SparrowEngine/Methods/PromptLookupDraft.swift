/// Prompt lookup decoding: when the last few tokens already occurred earlier (in the prompt or
/// the reply so far), draft what followed them then. Free to run, and strong whenever the
/// output copies from the input: edits of given code, quotes, extraction.
public struct PromptLookupDraft: DraftSource {
    /// The longest n-gram matched; shorter ones are tried down to `minimumNgram`.
    public let ngram: Int
    public let minimumNgram: Int

    public init(ngram: Int = 3, minimumNgram: Int = 1) {
        self.ngram = ngram
        self.minimumNgram = min(minimumNgram, ngram)
    }

    public var name: String { "prompt lookup (\(ngram)-gram)" }

    public mutating func draft(after history: [Int], count: Int, sampler: inout Sampler) -> [DraftToken] {
        Self.continuation(of: history, ngram: ngram, minimumNgram: minimumNgram, count: count).map { DraftToken(token: $0, distribution: .certain($0)) }
    }

    /// What followed the latest earlier occurrence of `history`'s last n tokens, longest n first.
    static func continuation(of history: [Int], ngram: Int, minimumNgram: Int, count: Int) -> [Int] {
        guard count > 0 else { return [] }
        for n in stride(from: min(ngram, history.count - 1), through: max(1, minimumNgram), by: -1) {
            let suffix = history[(history.count - n)...]
            // Latest first: recent text predicts best. The match must end before the suffix.
            var start = history.count - n - 1
            while start >= 0 {
                if history[start..<(start + n)].elementsEqual(suffix) {
                    let from = start + n
                    return Array(history[from..<min(from + count, history.count)])
                }
                start -= 1
            }
        }
        return []
    }
}
