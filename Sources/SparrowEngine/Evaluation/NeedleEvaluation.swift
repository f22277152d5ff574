import Foundation
import SparrowKernels

/// Runs needle prompts through generation, with or without a prompt filter.
public struct NeedleEvaluation {
    public struct Cell: Encodable, Sendable {
        public let length: Int
        public let depth: Int
        public let promptTokens: Int
        public let keptTokens: Int?
        /// Of the needle's tokens, how many the filter kept (nil without a filter).
        public let needleTokens: Int
        public let needleKept: Int?
        public let hit: Bool
        public let answer: String
        public let ttftMs: Double
        public let peakRssBytes: Int
    }

    public let model: LanguageModel
    public let haystack: NeedleHaystack
    public let answer: String
    public let pool: ThreadPool
    /// Tokens generated for the reply.
    public var replyTokens = 16

    public init(model: LanguageModel, haystack: NeedleHaystack, answer: String, pool: ThreadPool) {
        self.model = model
        self.haystack = haystack
        self.answer = answer
        self.pool = pool
    }

    /// One prompt: greedy reply, hit when it contains the answer. The cache holds what is
    /// prefilled plus the reply, as a server would size it; the peak RSS is this cell's.
    public func cell(length: Int, depth: Int, filter: (any PromptFilter)?) throws -> Cell {
        let prompt = try haystack.prompt(length: length, depthPercent: depth)
        ProcessMemory.resetPeak()
        let session = Session(model: model.transformer, contextSize: min(length, filter?.keep ?? length) + replyTokens + 1, pool: pool)
        let result = try reply(to: prompt.tokens, in: session, filter: filter)
        return Cell(length: length, depth: depth, promptTokens: prompt.tokens.count, keptTokens: result.timings.keptTokens,
                    needleTokens: prompt.needleCount, needleKept: result.keptIndices.map { prompt.needleKept(by: $0) },
                    hit: isHit(result), answer: result.text, ttftMs: result.timings.promptSeconds * 1000,
                    peakRssBytes: ProcessMemory.peakResidentBytes)
    }

    /// The greedy reply to `tokens` (reusing what `session` already holds of them).
    public func reply(to tokens: [Int], in session: Session, filter: (any PromptFilter)? = nil) throws -> GenerationResult {
        var options = GenerationOptions()
        options.maxTokens = replyTokens
        options.promptFilter = filter
        return try Generator(tokenizer: model.tokenizer, session: session).generate(prompt: tokens, options: options)
    }

    public func isHit(_ reply: GenerationResult) -> Bool { reply.text.contains(answer) }

    /// Every (length, depth) cell, in that order.
    public func grid(lengths: [Int], depths: [Int], filter: (any PromptFilter)?, onCell: (Cell) -> Void = { _ in }) throws -> [Cell] {
        var cells: [Cell] = []
        for length in lengths {
            for depth in depths {
                cells.append(try cell(length: length, depth: depth, filter: filter))
                onCell(cells.last!)
            }
        }
        return cells
    }
}
