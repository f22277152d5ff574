import SparrowEngine
import SparrowTokenizer

/// How one endpoint shapes a finished generation, and its stream of chunks.
protocol ResponseFormat: Sendable {
    func response(_ result: GenerationResult, tokens: [GeneratedToken]) -> any Encodable
    /// The chunk sent before any text, if the endpoint has one.
    func openingChunk() -> (any Encodable)?
    /// `textOffset`: the bytes of text streamed before this chunk.
    func chunk(text: String, tokens: [GeneratedToken], textOffset: Int) -> any Encodable
    func finalChunk(_ result: GenerationResult) -> any Encodable
    /// The chunk `stream_options.include_usage` asks for: no choices, the token counts.
    func usageChunk(_ result: GenerationResult) -> any Encodable
}

/// What every response and chunk of one request shares.
struct ResponseContext {
    let id: String
    let created: Int
    let model: String
    let tokenizer: Tokenizer
    /// nil: no log-probabilities; else how many alternatives per token.
    let logprobs: Int?
}

/// POST /v1/chat/completions: `chat.completion`, streamed as `chat.completion.chunk` deltas.
struct ChatFormat: ResponseFormat {
    let context: ResponseContext

    private typealias Envelope = Completion<AssistantMessage, ChatLogprobs>

    private func envelope(_ object: String, _ choices: [Envelope.Choice], usage: Usage? = nil, report: EngineReport? = nil) -> Envelope {
        Envelope(id: context.id, object: object, created: context.created, model: context.model, choices: choices, usage: usage, sparrow: report)
    }

    private func choice(_ key: String, _ message: AssistantMessage, tokens: [GeneratedToken], finish: String?) -> Envelope.Choice {
        Envelope.Choice(bodyKey: key, body: message,
                        logprobs: context.logprobs.map { ChatLogprobs(tokens, tokenizer: context.tokenizer, top: $0 > 0) }, finishReason: finish)
    }

    func response(_ result: GenerationResult, tokens: [GeneratedToken]) -> any Encodable {
        envelope("chat.completion", [choice("message", AssistantMessage(role: "assistant", content: result.text), tokens: tokens,
                                            finish: result.finishReason.rawValue)],
                 usage: Usage(result), report: EngineReport(result))
    }

    func openingChunk() -> (any Encodable)? {
        envelope("chat.completion.chunk", [choice("delta", AssistantMessage(role: "assistant", content: ""), tokens: [], finish: nil)])
    }

    func chunk(text: String, tokens: [GeneratedToken], textOffset: Int) -> any Encodable {
        envelope("chat.completion.chunk", [choice("delta", AssistantMessage(role: nil, content: text), tokens: tokens, finish: nil)])
    }

    func finalChunk(_ result: GenerationResult) -> any Encodable {
        envelope("chat.completion.chunk", [choice("delta", AssistantMessage(role: nil, content: nil), tokens: [], finish: result.finishReason.rawValue)],
                 report: EngineReport(result))
    }

    func usageChunk(_ result: GenerationResult) -> any Encodable {
        envelope("chat.completion.chunk", [], usage: Usage(result))
    }
}

/// POST /v1/completions: `text_completion`, streamed as the same object with text pieces.
struct CompletionFormat: ResponseFormat {
    let context: ResponseContext

    private typealias Envelope = Completion<String, CompletionLogprobs>

    private func envelope(_ choices: [Envelope.Choice], usage: Usage? = nil, report: EngineReport? = nil) -> Envelope {
        Envelope(id: context.id, object: "text_completion", created: context.created, model: context.model, choices: choices, usage: usage, sparrow: report)
    }

    private func choice(_ text: String, tokens: [GeneratedToken], textOffset: Int, finish: String?) -> Envelope.Choice {
        Envelope.Choice(bodyKey: "text", body: text,
                        logprobs: context.logprobs.map { _ in CompletionLogprobs(tokens, tokenizer: context.tokenizer, startOffset: textOffset) }, finishReason: finish)
    }

    func response(_ result: GenerationResult, tokens: [GeneratedToken]) -> any Encodable {
        envelope([choice(result.text, tokens: tokens, textOffset: 0, finish: result.finishReason.rawValue)], usage: Usage(result), report: EngineReport(result))
    }

    func openingChunk() -> (any Encodable)? { nil }

    func chunk(text: String, tokens: [GeneratedToken], textOffset: Int) -> any Encodable {
        envelope([choice(text, tokens: tokens, textOffset: textOffset, finish: nil)])
    }

    func finalChunk(_ result: GenerationResult) -> any Encodable {
        envelope([choice("", tokens: [], textOffset: 0, finish: result.finishReason.rawValue)], report: EngineReport(result))
    }

    func usageChunk(_ result: GenerationResult) -> any Encodable {
        envelope([], usage: Usage(result))
    }
}
