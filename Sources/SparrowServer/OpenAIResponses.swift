import Foundation
import Hummingbird
import SparrowEngine
import SparrowTokenizer

// The response bodies of the OpenAI API. Fields OpenAI sends as null (a chunk's
// finish_reason, an absent logprobs) are written as null, not left out: clients index them.

/// An error as OpenAI reports it: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error, Encodable, CustomStringConvertible {
    let status: HTTPResponse.Status
    let message: String
    let type: String
    let code: String?

    var description: String { message }

    static func invalidRequest(_ message: String, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", code: code)
    }

    static func modelNotFound(_ model: String, served: String) -> APIError {
        APIError(status: .notFound, message: "the model '\(model)' does not exist; this server serves '\(served)'",
                 type: "invalid_request_error", code: "model_not_found")
    }

    static let busy = APIError(status: .serviceUnavailable, message: QueueFullError().description, type: "server_error", code: "server_busy")

    static func server(_ message: String) -> APIError {
        APIError(status: .internalServerError, message: message, type: "server_error", code: nil)
    }

    enum CodingKeys: String, CodingKey { case error }
    enum InnerKeys: String, CodingKey { case message, type, param, code }

    func encode(to encoder: any Encoder) throws {
        var outer = encoder.container(keyedBy: CodingKeys.self)
        var inner = outer.nestedContainer(keyedBy: InnerKeys.self, forKey: .error)
        try inner.encode(message, forKey: .message)
        try inner.encode(type, forKey: .type)
        try inner.encodeNil(forKey: .param)
        try inner.encode(code, forKey: .code)
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        case is [Any].Type: "an array"
        case is [String: Any].Type: "an object"
        default: "\(type)"
        }
    }
}

extension APIError {
    /// The error for a body the JSON decoder refused, naming the field at fault.
    init(decoding error: any Error) {
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { path, key in
                if let index = key.intValue { return path + "[\(index)]" }
                return path.isEmpty ? key.stringValue : path + "." + key.stringValue
            }
        }
        let message: String
        switch error as? DecodingError {
        case .typeMismatch(let type, let context)?:
            message = "'\(path(context.codingPath))' has the wrong type (expected \(Self.describe(type))): \(context.debugDescription)"
        case .valueNotFound(_, let context)?:
            message = "'\(path(context.codingPath))' must not be null"
        case .keyNotFound(let key, let context)?:
            message = "missing required field '\(path(context.codingPath + [key]))'"
        case .dataCorrupted(let context)? where context.codingPath.isEmpty:
            message = "the request body is not valid JSON: \(context.underlyingError.map { "\($0)" } ?? context.debugDescription)"
        case .dataCorrupted(let context)?:
            message = "'\(path(context.codingPath))' is invalid: \(context.debugDescription)"
        default:
            message = "the request body cannot be read: \(error)"
        }
        self = .invalidRequest(message)
    }
}

struct Usage: Encodable {
    let promptTokens: Int
    let completionTokens: Int
    let totalTokens: Int

    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }

    init(_ result: GenerationResult) {
        promptTokens = result.promptTokens.count
        completionTokens = result.generatedTokens.count
        totalTokens = promptTokens + completionTokens
    }
}

/// What the engine adds to a finished response: llama-server's timings and, with speculative
/// decoding or GemFilter, how they fared.
struct EngineReport: Encodable {
    let timings: GenerationReport.Timings
    let speculation: SpeculationStats?

    init(_ result: GenerationResult) {
        timings = GenerationReport.Timings(result.timings)
        speculation = result.speculation
    }
}

/// Chat-style log-probabilities: per token its text, bytes, log-probability and the most
/// likely alternatives.
struct ChatLogprobs: Encodable {
    struct Entry: Encodable {
        let token: String
        let logprob: Float
        let bytes: [UInt8]
        let topLogprobs: [Alternative]?

        enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
    }

    struct Alternative: Encodable {
        let token: String
        let logprob: Float
        let bytes: [UInt8]
    }

    let content: [Entry]

    init(_ tokens: [GeneratedToken], tokenizer: Tokenizer, top: Bool) {
        func text(_ id: Int) -> (String, [UInt8]) {
            let bytes = tokenizer.tokenBytes(id)
            return (String(decoding: bytes, as: UTF8.self), bytes)
        }
        content = tokens.map { token in
            let (string, bytes) = text(token.token)
            return Entry(token: string, logprob: token.logprob ?? 0, bytes: bytes, topLogprobs: top ? token.top.map { alternative in
                let (string, bytes) = text(alternative.token)
                return Alternative(token: string, logprob: alternative.logProbability, bytes: bytes)
            } : nil)
        }
    }
}

/// The legacy completions' log-probabilities: parallel arrays, alternatives as a map.
struct CompletionLogprobs: Encodable {
    let tokens: [String]
    let tokenLogprobs: [Float]
    let topLogprobs: [[String: Float]]
    let textOffset: [Int]

    enum CodingKeys: String, CodingKey { case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset" }

    init(_ generated: [GeneratedToken], tokenizer: Tokenizer, startOffset: Int) {
        tokens = generated.map { String(decoding: tokenizer.tokenBytes($0.token), as: UTF8.self) }
        tokenLogprobs = generated.map { $0.logprob ?? 0 }
        topLogprobs = generated.map { token in
            Dictionary(token.top.map { (String(decoding: tokenizer.tokenBytes($0.token), as: UTF8.self), $0.logProbability) }) { a, _ in a }
        }
        var offset = startOffset
        textOffset = tokens.map { token in
            defer { offset += token.utf8.count }
            return offset
        }
    }
}

/// One choice of a response or a streamed chunk.
struct CompletionChoice<Body: Encodable, Logprobs: Encodable>: Encodable {
    let index = 0
    /// `message` or `delta` (chat), or `text` (completions).
    let bodyKey: String
    let body: Body
    let logprobs: Logprobs?
    let finishReason: String?

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(index, forKey: Key(stringValue: "index"))
        try container.encode(body, forKey: Key(stringValue: bodyKey))
        try container.encode(logprobs, forKey: Key(stringValue: "logprobs"))
        try container.encode(finishReason, forKey: Key(stringValue: "finish_reason"))
    }
}

/// A chat message or streamed delta from the assistant.
struct AssistantMessage: Encodable {
    let role: String?
    let content: String?
}

/// A response or streamed chunk: the envelope around the choices.
struct Completion<Body: Encodable, Logprobs: Encodable>: Encodable {
    let id: String
    let object: String
    let created: Int
    let model: String
    typealias Choice = CompletionChoice<Body, Logprobs>

    let choices: [Choice]
    let usage: Usage?
    let sparrow: EngineReport?

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage, sparrow }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(created, forKey: .created)
        try container.encode(model, forKey: .model)
        try container.encode(choices, forKey: .choices)
        try container.encodeIfPresent(usage, forKey: .usage)
        try container.encodeIfPresent(sparrow, forKey: .sparrow)
    }
}

/// GET /v1/models.
struct ModelList: Encodable {
    struct Model: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "sparrow"
        let meta: Meta

        enum CodingKeys: String, CodingKey { case id, object, created, meta, ownedBy = "owned_by" }
    }

    struct Meta: Encodable {
        let contextSize: Int
        let trainedContextSize: Int
        let vocabularySize: Int
        let fileBytes: Int

        enum CodingKeys: String, CodingKey {
            case contextSize = "n_ctx", trainedContextSize = "n_ctx_train", vocabularySize = "n_vocab", fileBytes = "size"
        }
    }

    let object = "list"
    let data: [Model]
}

struct Health: Encodable {
    let status = "ok"
    let slotsIdle: Int
    let slotsBusy: Int
    let queued: Int

    enum CodingKeys: String, CodingKey { case status, queued, slotsIdle = "slots_idle", slotsBusy = "slots_busy" }
}

struct TokenList: Encodable {
    let tokens: [Int]
}

struct DetokenizedText: Encodable {
    let content: String
}
