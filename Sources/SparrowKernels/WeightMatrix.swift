/// A kernel-layer input that cannot be used, with what is wrong.
public struct KernelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Read-only view of a row-major 2-D weight matrix in GGML block format: `rows` output
/// features, each row `cols` input elements encoded as `type` (rows are contiguous, rowBytes apart).
public struct WeightMatrix: @unchecked Sendable {
    public let type: TensorType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public var rowBytes: Int { cols / type.blockSize * type.bytesPerBlock }
    /// Bytes of the whole matrix.
    public var byteCount: Int { rows * rowBytes }

    public init(type: TensorType, rows: Int, cols: Int, data: UnsafeRawPointer) throws {
        guard type.isComputable else {
            throw KernelError("tensor type \(type.name) is not supported by the kernels")
        }
        guard rows >= 0, cols > 0, cols % type.blockSize == 0 else {
            throw KernelError("a \(type.name) matrix needs rows >= 0 and cols a positive multiple of \(type.blockSize); got \(rows)x\(cols)")
        }
        guard let rowBytes = type.byteCount(elements: cols), !rows.multipliedReportingOverflow(by: rowBytes).overflow else {
            throw KernelError("a \(rows)x\(cols) \(type.name) matrix is too large")
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
    }

    /// Start of row `row`'s encoded bytes.
    @inline(__always) func row(_ row: Int) -> UnsafeRawPointer { data + row * rowBytes }

    /// Dequantises row `row` (`cols` floats) into `dst`, e.g. for embedding lookups.
    public func dequantizeRow(_ row: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(row >= 0 && row < rows, "row \(row) out of 0..<\(rows)")
        dequantize(type, self.row(row), into: dst, count: cols)
    }
}
