import SparrowTokenizer

/// Needle-in-a-haystack prompts of an exact token length: real text with one sentence (the
/// needle) inserted at a chosen depth, then a question about it at the end, wrapped in the
/// model's chat template. Tokens are assembled piecewise (template head, text, needle, text,
/// question and template tail, each tokenised alone) so that every length is hit exactly.
public struct NeedleHaystack {
    public struct Prompt: Sendable {
        public let tokens: [Int]
        /// Index of the needle's first token.
        public let needleStart: Int
        public let needleCount: Int

        /// How many of the needle's tokens are among `kept` (ascending prompt indices).
        public func needleKept(by kept: [Int]) -> Int {
            kept.filter { (needleStart..<(needleStart + needleCount)).contains($0) }.count
        }
    }

    let head: [Int]
    let tail: [Int]
    let needle: [Int]
    let text: [Int]
    let tokenizer: Tokenizer

    /// - Parameters:
    ///   - haystack: real text; enough for the longest prompt asked for.
    ///   - chat: wrap in the model's chat template (instruct models) or use plain text.
    public init(model: LanguageModel, haystack: String, needle: String, question: String, chat: Bool) throws {
        tokenizer = model.tokenizer
        let marker = "\u{1}HAYSTACK\u{1}"
        if chat {
            let rendered = try model.chatTemplate.render([ChatMessage(role: "user", content: marker)])
            guard let range = rendered.range(of: marker) else {
                throw EvaluationError(description: "the chat template does not keep the user message verbatim")
            }
            head = model.promptTokens(String(rendered[..<range.lowerBound]))
            tail = tokenizer.encode("\n\n" + question, addSpecial: false, parseSpecial: false)
                + tokenizer.encode(String(rendered[range.upperBound...]), addSpecial: false, parseSpecial: true)
        } else {
            head = model.promptTokens("")
            tail = tokenizer.encode("\n\n" + question + "\nAnswer:", addSpecial: false, parseSpecial: false)
        }
        self.needle = tokenizer.encode("\n" + needle + "\n", addSpecial: false, parseSpecial: false)
        text = tokenizer.encode(haystack, addSpecial: false, parseSpecial: false)
    }

    /// The prompt of exactly `length` tokens with the needle at `depthPercent` of the text
    /// (moved back to just after the nearest line or sentence end, when one is close).
    public func prompt(length: Int, depthPercent: Int) throws -> Prompt {
        let budget = length - head.count - tail.count - needle.count
        guard budget > 0 else { throw EvaluationError(description: "\(length) tokens cannot hold the template, needle and question") }
        guard budget <= text.count else {
            throw EvaluationError(description: "the haystack has \(text.count) tokens; \(length) tokens need \(budget)")
        }
        var split = budget * min(max(depthPercent, 0), 100) / 100
        if let boundary = (max(0, split - 64)..<split).last(where: { endsSentence(text[$0]) }) { split = boundary + 1 }
        let tokens = head + text[..<split] + needle + text[split..<budget] + tail
        return Prompt(tokens: tokens, needleStart: head.count + split, needleCount: needle.count)
    }

    private func endsSentence(_ token: Int) -> Bool {
        let piece = tokenizer.decode([token])
        return piece.contains(".") || piece.contains("\n")
    }
}
