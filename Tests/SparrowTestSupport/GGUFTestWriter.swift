import Foundation
import SparrowGGUF

/// Little-endian byte building for hand-made GGUF files.
public struct ByteBuilder {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func appendString(_ string: String) {
        appendRawString(Array(string.utf8))
    }

    public mutating func appendRawString(_ utf8: [UInt8]) {
        append(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    public mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    public mutating func appendValue(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .float64(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let v): appendString(v)
        case .array(let elements):
            append(elements.first.map(GGUFTestWriter.typeID) ?? 0)
            append(UInt64(elements.count))
            for element in elements { appendValue(element) }
        }
    }
}

/// Writes small GGUF files for tests: metadata in the given order, tensors laid out at aligned
/// offsets, and no padding after the last tensor (so any truncation cuts real data).
public struct GGUFTestWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var typeID: UInt32
        public var data: [UInt8]
        /// Relative to the data section; nil lays tensors out one after another.
        public var offset: Int?

        public init(name: String, shape: [Int], typeID: UInt32, data: [UInt8], offset: Int? = nil) {
            self.name = name
            self.shape = shape
            self.typeID = typeID
            self.data = data
            self.offset = offset
        }

        /// An F32 tensor; `shape` is GGUF's, innermost dimension first.
        public static func f32(_ name: String, shape: [Int], _ values: [Float]) -> Tensor {
            precondition(values.count == shape.reduce(1, *))
            return Tensor(name: name, shape: shape, typeID: 0, data: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        }
    }

    public var version: UInt32 = 3
    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [Tensor] = []

    public init(version: UInt32 = 3, metadata: [(key: String, value: GGUFValue)] = [], tensors: [Tensor] = []) {
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
    }

    public static func typeID(_ value: GGUFValue) -> UInt32 {
        switch value {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    /// The layout alignment: `general.alignment` when valid, else GGUF's default, so files
    /// with a bad alignment entry can still be written.
    public var alignment: Int {
        guard case .uint32(let a)? = metadata.first(where: { $0.key == "general.alignment" })?.value,
              a > 0, a & (a - 1) == 0 else { return 32 }
        return Int(a)
    }

    public func bytes() -> [UInt8] {
        var out = ByteBuilder()
        out.append(UInt32(0x4655_4747))
        out.append(version)
        out.append(UInt64(tensors.count))
        out.append(UInt64(metadata.count))
        for (key, value) in metadata {
            out.appendString(key)
            out.append(Self.typeID(value))
            out.appendValue(value)
        }
        var offsets: [Int] = []
        var next = 0
        for tensor in tensors {
            let offset = tensor.offset ?? next
            offsets.append(offset)
            next = (offset + tensor.data.count + alignment - 1) / alignment * alignment
        }
        for (tensor, offset) in zip(tensors, offsets) {
            out.appendString(tensor.name)
            out.append(UInt32(tensor.shape.count))
            for dimension in tensor.shape { out.append(UInt64(dimension)) }
            out.append(tensor.typeID)
            out.append(UInt64(offset))
        }
        out.pad(to: alignment)
        let dataStart = out.bytes.count
        for (tensor, offset) in zip(tensors, offsets) {
            let end = dataStart + offset + tensor.data.count
            if out.bytes.count < end { out.bytes += [UInt8](repeating: 0, count: end - out.bytes.count) }
            out.bytes.replaceSubrange((dataStart + offset)..<end, with: tensor.data)
        }
        return out.bytes
    }
}

/// Temporary files for one test, removed when it is released.
public final class TemporaryDirectory {
    public let url: URL
    private var counter = 0

    public init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-gguf-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func write(_ bytes: [UInt8]) -> String {
        counter += 1
        let path = url.appendingPathComponent("file\(counter).gguf").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// The error opening `bytes` throws, or nil when it opens.
    public func openError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try GGUFFile(path: write(bytes))
            return nil
        } catch let error as GGUFError {
            return error.description
        } catch {
            return "unexpected error type: \(error)"
        }
    }
}

/// Small deterministic generator (SplitMix64) so random test data and failures reproduce.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
