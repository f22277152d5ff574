import SparrowGGUF
import SparrowTokenizer

/// A loaded model with everything needed to turn text into text: weights, tokenizer and the
/// chat template it ships with.
public final class LanguageModel: @unchecked Sendable {
    public let file: GGUFFile
    public let transformer: TransformerModel
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate

    public init(path: String) throws {
        file = try GGUFFile(path: path)
        transformer = try TransformerModel(file: file)
        tokenizer = try Tokenizer(gguf: file)
        guard tokenizer.vocabularySize <= transformer.vocabularySize else {
            throw ModelError("the tokenizer has \(tokenizer.vocabularySize) tokens but the output layer only \(transformer.vocabularySize)")
        }
        chatTemplate = try ChatTemplate(gguf: file, tokenizer: tokenizer)
    }

    public var config: ModelConfig { transformer.config }

    /// The context size to use when none is asked for: the trained length, capped to keep the
    /// cache small.
    public var defaultContextSize: Int { min(config.trainedContextLength, 4096) }

    /// Token ids for a plain prompt, or for a conversation rendered with the chat template.
    public func promptTokens(_ text: String) -> [Int] {
        tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }

    public func chatPromptTokens(_ messages: [ChatMessage]) throws -> [Int] {
        return promptTokens(try chatTemplate.render(messages))
    }
}
