import SparrowGGUF
import SparrowJinja
import SparrowTokenizer

/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A chat template rendered by the Jinja interpreter with the variables Hugging Face and
/// llama.cpp provide.
public struct ChatTemplate: Sendable {
    private let template: JinjaTemplate
    private let bosToken: String
    private let eosToken: String

    /// ChatML, which llama.cpp falls back to when a model ships no template (e.g. base models).
    static let chatML = """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
        """

    /// The model's template (`tokenizer.chat_template`), or ChatML when it has none.
    public init(gguf: GGUFFile, tokenizer: Tokenizer) throws {
        let source = gguf.string("tokenizer.chat_template") ?? Self.chatML
        do {
            template = try JinjaTemplate(source)
        } catch {
            throw ModelError("the model's chat template does not parse: \(error)")
        }
        bosToken = tokenizer.bosToken.map { tokenizer.tokenText($0) } ?? ""
        eosToken = tokenizer.eosToken.map { tokenizer.tokenText($0) } ?? ""
    }

    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        let context: [String: JinjaValue] = [
            "messages": .array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        return try template.render(context)
    }
}
