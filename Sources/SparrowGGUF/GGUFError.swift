/// Why a GGUF file could not be opened; the message names what is wrong and where.
public struct GGUFError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
