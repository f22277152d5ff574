/// A parsed Jinja template (the subset used by LLM chat templates), ready to render any
/// number of times. Parsing happens once, in `init`.
///
/// Defaults match how Hugging Face transformers (and llama.cpp) render chat templates:
/// `trim_blocks` and `lstrip_blocks` on, trailing newline of the source dropped, `tojson`
/// as `json.dumps(ensure_ascii=False)`, undefined variables rendering as empty and falsy,
/// and the globals `raise_exception`, `namespace`, `range`, `dict`, `strftime_now`.
public struct JinjaTemplate: Sendable {
    public struct Options: Sendable, Equatable {
        /// Drop the first newline after a block or comment tag.
        public var trimBlocks: Bool
        /// Strip spaces and tabs before a block or comment tag that starts its line.
        public var lstripBlocks: Bool
        /// Keep a single trailing newline of the template source.
        public var keepTrailingNewline: Bool

        public init(trimBlocks: Bool = true, lstripBlocks: Bool = true, keepTrailingNewline: Bool = false) {
            self.trimBlocks = trimBlocks
            self.lstripBlocks = lstripBlocks
            self.keepTrailingNewline = keepTrailingNewline
        }

        /// The environment transformers uses for `apply_chat_template`.
        public static let chatTemplate = Options()
    }

    private let nodes: [Node]

    /// Parses `source`; throws `JinjaError` (with the line) on syntax errors.
    public init(_ source: String, options: Options = .chatTemplate) throws {
        var lexer = Lexer(source, options: options)
        var parser = Parser(tokens: try lexer.tokenize())
        nodes = try parser.parseTemplate()
    }

    /// Renders with the given variables (e.g. `messages`, `add_generation_prompt`,
    /// `bos_token`). Throws `JinjaError` on evaluation errors and `raise_exception`.
    public func render(_ context: [String: JinjaValue]) throws -> String {
        try Renderer(context: context).render(nodes)
    }
}
