/// Why a model could not be found, fetched or verified.
public struct ModelStoreError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
