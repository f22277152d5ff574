import SparrowKernels

/// An open GGUF model file: its metadata, parsed eagerly, and its tensors, memory-mapped.
///
/// The mapping lives as long as this object; tensor `data` pointers must not outlive it.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let fileSize: Int
    public let metadata: [String: GGUFValue]
    /// In file order.
    public let tensors: [GGUFTensor]
    /// `general.alignment`, or GGUF's default of 32.
    public let alignment: Int
    /// Absolute file offset of the tensor data section.
    public let dataOffset: Int

    private let mapping: MemoryMapping
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        let mapping = try MemoryMapping(path: path)
        let contents: GGUFContents
        do {
            contents = try GGUFParser.parse(base: mapping.base, size: mapping.size)
        } catch let error as GGUFError {
            throw GGUFError("\(path): \(error.description)")
        }
        self.path = path
        self.mapping = mapping
        fileSize = mapping.size
        version = contents.version
        metadata = contents.metadata
        tensors = contents.tensors
        alignment = contents.alignment
        dataOffset = contents.dataOffset
        tensorIndex = Dictionary(uniqueKeysWithValues: contents.tensors.enumerated().map { ($1.name, $0) })
    }

    public func tensor(named name: String) -> GGUFTensor? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Gives back the memory of a tensor whose bytes have been copied elsewhere (they stay
    /// readable: a later read pages them in again).
    public func releasePages(of tensor: GGUFTensor) {
        mapping.release(tensor.data, count: tensor.byteCount)
    }

    public func string(_ key: String) -> String? { metadata[key]?.string }
    /// Any integer type that fits in `Int`.
    public func int(_ key: String) -> Int? { metadata[key]?.int }
    /// float32 or float64, and integers converted.
    public func float(_ key: String) -> Float? { metadata[key]?.float }
    public func bool(_ key: String) -> Bool? { metadata[key]?.bool }

    /// nil when absent, not an array, or any element is of another type.
    public func stringArray(_ key: String) -> [String]? { elements(key) { $0.string } }
    public func intArray(_ key: String) -> [Int]? { elements(key) { $0.int } }
    public func floatArray(_ key: String) -> [Float]? { elements(key) { $0.float } }

    private func elements<T>(_ key: String, _ convert: (GGUFValue) -> T?) -> [T]? {
        guard let array = metadata[key]?.array else { return nil }
        var result: [T] = []
        result.reserveCapacity(array.count)
        for element in array {
            guard let converted = convert(element) else { return nil }
            result.append(converted)
        }
        return result
    }
}
