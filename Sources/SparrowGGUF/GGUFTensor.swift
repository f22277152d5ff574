import SparrowKernels

/// A tensor stored in a GGUF file; `data` points into the file's memory mapping and stays
/// valid as long as the owning `GGUFFile` lives.
public struct GGUFTensor: @unchecked Sendable {
    public let name: String
    /// GGML order: `shape[0]` is the contiguous dimension (row length).
    public let shape: [Int]
    public let type: TensorType
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// Absolute offset of the tensor's first byte in the file.
    public let fileOffset: Int

    public var elementCount: Int { shape.reduce(1, *) }
}
