import CSparrowSIMD

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

/// Weight matrices re-encoded at load where the kernels this CPU runs multiply another
/// encoding of the same values faster; owns the copies. Products are bit for bit those of the
/// original encoding. Filled while a model loads (one `prepare` at a time), then only read.
///
/// The one re-encoding: with AVX2 alone, Q5_0 becomes Q8_0 (1.55x the bytes). Unpacking
/// Q5_0's fifth bits, not memory, bounds its one-token product there, and Q8_0's runs near
/// the memory's speed: Qwen2.5-Coder-0.5B, whose layers are mostly Q5_0, decodes about 1.1x
/// faster on an AVX2-only EPYC. With VNNI the unpacking is cheap, so the bytes matter more.
public final class PreparedWeights: @unchecked Sendable {
    public let instructions: DotInstructions
    /// Bytes of the copies held.
    public private(set) var copiedBytes = 0
    private var copies: [UnsafeMutableRawPointer] = []

    public init(instructions: DotInstructions = .best) { self.instructions = instructions }

    deinit { for p in copies { p.deallocate() } }

    /// `w` re-encoded for these instructions, in a copy this object owns; nil where `w` is
    /// already the encoding they multiply fastest.
    public func prepare(_ w: WeightMatrix) throws -> WeightMatrix? {
        guard instructions == .avx2, w.type == .q5_0 else { return nil }
        let byteCount = w.rows * w.cols / 32 * Q8_0Format.blockBytes
        let out = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        w.widenQ5_0(into: out)
        copies.append(out)
        copiedBytes += byteCount
        return try WeightMatrix(type: .q8_0, rows: w.rows, cols: w.cols, data: out)
    }
}

extension WeightMatrix {
    /// This Q5_0 matrix as Q8_0 blocks at `out`: each value d * (q - 16) is d * w for the
    /// int8 w = q - 16 under the same f16 scale.
    func widenQ5_0(into out: UnsafeMutableRawPointer) {
        precondition(type == .q5_0, "widenQ5_0: \(type.name) matrix")
        for b in 0..<rows * cols / 32 {
            let source = data + Q5_0Format.blockBytes * b, target = out + Q8_0Format.blockBytes * b
            target.storeBytes(of: source.loadUnaligned(as: UInt16.self), as: UInt16.self)
            let quants = sparrow_minus_offset32(Q5_0Format.quants(source), Q5_0Format.offset)
            (target + 2).storeBytes(of: quants, as: SIMD32<Int8>.self)
        }
    }
}
