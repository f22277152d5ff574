import Foundation
import SparrowKernels

/// Runs needle prompts through generation, with or without a prompt filter.
public struct NeedleEvaluation {
    public struct Cell: Encodable, Sendable {
        public let length: Int
        public let depth: Int
        public let promptTokens: Int
        public let keptTokens: Int?
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
        var options = GenerationOptions()
        options.maxTokens = replyTokens
        options.promptFilter = filter
        let prefilled = min(length, filter?.keep ?? length)
        let session = Session(model: model.transformer, contextSize: prefilled + replyTokens + 1, pool: pool)
        let result = try Generator(tokenizer: model.tokenizer, session: session).generate(prompt: prompt.tokens, options: options)
        return Cell(length: length, depth: depth, promptTokens: prompt.tokens.count, keptTokens: result.timings.keptTokens,
                    hit: result.text.contains(answer), answer: result.text, ttftMs: result.timings.promptSeconds * 1000,
                    peakRssBytes: ProcessMemory.peakResidentBytes)
    }

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
