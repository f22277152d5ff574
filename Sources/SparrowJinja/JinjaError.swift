/// A template syntax error, a render-time error, or a `raise_exception(message)` call from
/// the template. `description` is human-readable and starts with `line N: ` when the line
/// is known; for `raise_exception` it is exactly the template's message.
public struct JinjaError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// 1-based template line the error refers to, when known.
    public let line: Int?
    /// True when the template called `raise_exception`.
    public let isRaisedByTemplate: Bool
    /// The description without its line prefix.
    let message: String

    init(_ message: String, line: Int? = nil) {
        self.message = message
        self.line = line
        self.isRaisedByTemplate = false
        self.description = line.map { "line \($0): \(message)" } ?? message
    }

    private init(raisedMessage: String) {
        self.message = raisedMessage
        self.line = nil
        self.isRaisedByTemplate = true
        self.description = raisedMessage
    }

    /// Raised by the template itself; the message is passed through untouched.
    static func raised(_ message: String) -> JinjaError { JinjaError(raisedMessage: message) }
}

/// Bounds that keep hostile or broken input from exhausting the stack or memory.
enum JinjaLimits {
    /// Nesting of expressions and blocks in a template source.
    static let templateNesting = 100
    /// Nesting of arrays/objects in context data and JSON text.
    static let dataNesting = 256
    /// Depth of macro calls (recursion).
    static let macroCalls = 64
    /// Elements produced by `range()` or sequence repetition.
    static let sequenceLength = 10_000_000
}
