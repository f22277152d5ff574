import SparrowKernels

/// Everything the header of a GGUF file says, validated against the file's size.
struct GGUFContents {
    var version: UInt32
    var metadata: [String: GGUFValue]
    var tensors: [GGUFTensor]
    var alignment: Int
    var dataOffset: Int
}

/// Parses GGUF versions 2 and 3 (little-endian), which share one layout:
/// magic, version, tensor count, metadata count, metadata entries, tensor infos, padding to
/// `general.alignment`, then the tensor data section.
enum GGUFParser {
    static let magic: UInt32 = 0x4655_4747  // "GGUF" read as a little-endian UInt32
    static let defaultAlignment = 32
    static let maximumDimensions = 4  // GGML_MAX_DIMS
    /// Deeper nesting than any real file uses; bounds recursion on crafted input.
    static let maximumArrayDepth = 16

    static func parse(base: UnsafeRawPointer, size: Int) throws -> GGUFContents {
        var reader = ByteReader(base: base, size: size)
        guard size >= 4 else { throw GGUFError("not a GGUF file (only \(size) bytes)") }
        let fileMagic = try reader.read(UInt32.self)
        guard fileMagic == magic else {
            throw GGUFError("not a GGUF file (magic 0x\(hex(fileMagic.byteSwapped)), expected 0x47475546 \"GGUF\")")
        }
        let version = try reader.read(UInt32.self)
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw GGUFError("big-endian GGUF files are not supported")
            }
            throw GGUFError("unsupported GGUF version \(version) (supported: 2 and 3)")
        }
        // Smallest possible tensor info: name length, 1 dimension, type, offset.
        let tensorCount = try reader.readCount("tensor count", minimumBytes: 8 + 4 + 8 + 4 + 8)
        // Smallest possible metadata entry: key length, value type, one byte of value.
        let metadataCount = try reader.readCount("metadata entry count", minimumBytes: 8 + 4 + 1)

        let metadata = try readMetadata(count: metadataCount, reader: &reader)
        let alignment = try self.alignment(metadata)
        let infos = try readTensorInfos(count: tensorCount, alignment: alignment, reader: &reader)

        reader.context = "padding before the tensor data"
        let (padded, overflow) = reader.position.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw reader.error("data section offset overflows") }
        let dataOffset = padded / alignment * alignment
        let tensors = try locate(infos, dataOffset: dataOffset, base: base, fileSize: size)
        return GGUFContents(
            version: version, metadata: metadata, tensors: tensors,
            alignment: alignment, dataOffset: dataOffset)
    }

    private static func readMetadata(count: Int, reader: inout ByteReader) throws -> [String: GGUFValue] {
        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(count)
        for index in 0..<count {
            reader.context = "the key of metadata entry \(index)"
            let key = try reader.readString()
            reader.context = "metadata '\(key)'"
            let type = try readValueType(reader: &reader)
            let value = try readValue(type, depth: 0, reader: &reader)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw reader.error("duplicate metadata key '\(key)'")
            }
        }
        return metadata
    }

    private static func readValueType(reader: inout ByteReader) throws -> GGUFValueType {
        let id = try reader.read(UInt32.self)
        guard let type = GGUFValueType(rawValue: id) else {
            throw reader.error("unknown metadata value type \(id)")
        }
        return type
    }

    private static func readValue(_ type: GGUFValueType, depth: Int, reader: inout ByteReader) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try reader.read(UInt8.self))
        case .int8: return .int8(try reader.read(Int8.self))
        case .uint16: return .uint16(try reader.read(UInt16.self))
        case .int16: return .int16(try reader.read(Int16.self))
        case .uint32: return .uint32(try reader.read(UInt32.self))
        case .int32: return .int32(try reader.read(Int32.self))
        case .uint64: return .uint64(try reader.read(UInt64.self))
        case .int64: return .int64(try reader.read(Int64.self))
        case .float32: return .float32(Float(bitPattern: try reader.read(UInt32.self)))
        case .float64: return .float64(Double(bitPattern: try reader.read(UInt64.self)))
        case .bool:
            let byte = try reader.read(UInt8.self)
            guard byte <= 1 else { throw reader.error("invalid bool value \(byte)") }
            return .bool(byte == 1)
        case .string:
            return .string(try reader.readString())
        case .array:
            guard depth < maximumArrayDepth else {
                throw reader.error("arrays nested more than \(maximumArrayDepth) deep")
            }
            let elementType = try readValueType(reader: &reader)
            let count = try reader.readCount("array length", minimumBytes: elementType.minimumByteCount)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                elements.append(try readValue(elementType, depth: depth + 1, reader: &reader))
            }
            return .array(elements)
        }
    }

    private static func alignment(_ metadata: [String: GGUFValue]) throws -> Int {
        guard let value = metadata["general.alignment"] else { return defaultAlignment }
        guard case .uint32(let alignment) = value, alignment > 0, alignment & (alignment - 1) == 0 else {
            throw GGUFError("general.alignment must be a uint32 power of two, got \(value)")
        }
        return Int(alignment)
    }

    private struct TensorInfo {
        var name: String
        var shape: [Int]
        var type: TensorType
        var offset: Int
        var byteCount: Int
    }

    private static func readTensorInfos(count: Int, alignment: Int, reader: inout ByteReader) throws -> [TensorInfo] {
        var infos: [TensorInfo] = []
        infos.reserveCapacity(count)
        var indexByName: [String: Int] = [:]
        for index in 0..<count {
            reader.context = "the name of tensor info \(index)"
            let name = try reader.readString()
            reader.context = "tensor info '\(name)'"
            if let first = indexByName.updateValue(index, forKey: name) {
                throw reader.error("duplicate tensor name '\(name)' (tensors \(first) and \(index))")
            }
            let dimensionCount = try reader.read(UInt32.self)
            guard (1...UInt32(maximumDimensions)).contains(dimensionCount) else {
                throw reader.error("tensor '\(name)' has \(dimensionCount) dimensions (1 to \(maximumDimensions) allowed)")
            }
            var shape: [Int] = []
            var elementCount = 1
            for _ in 0..<dimensionCount {
                let dimension = try reader.readSize("dimension of tensor '\(name)'")
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw reader.error("tensor '\(name)' has too many elements: shape \(shape + [dimension])") }
                elementCount = product
                shape.append(dimension)
            }
            let typeID = try reader.read(UInt32.self)
            guard let type = TensorType(rawValue: typeID) else {
                throw reader.error("tensor '\(name)' has unknown tensor type id \(typeID)")
            }
            guard shape[0] % type.blockSize == 0 else {
                throw reader.error("tensor '\(name)' of type \(type.name) has rows of \(shape[0]) elements, not a multiple of its block size \(type.blockSize)")
            }
            guard let byteCount = type.byteCount(elements: elementCount) else {
                throw reader.error("tensor '\(name)' of shape \(shape) is too large")
            }
            let offset = try reader.readSize("data offset of tensor '\(name)'")
            guard offset % alignment == 0 else {
                throw reader.error("tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            infos.append(TensorInfo(name: name, shape: shape, type: type, offset: offset, byteCount: byteCount))
        }
        return infos
    }

    /// Places each tensor in the file, checking it lies inside the file and overlaps no other.
    private static func locate(_ infos: [TensorInfo], dataOffset: Int, base: UnsafeRawPointer, fileSize: Int) throws -> [GGUFTensor] {
        var ranges: [(range: Range<Int>, name: String)] = []
        ranges.reserveCapacity(infos.count)
        for info in infos {
            let (start, startOverflow) = dataOffset.addingReportingOverflow(info.offset)
            let (end, endOverflow) = start.addingReportingOverflow(info.byteCount)
            guard !startOverflow, !endOverflow, end <= fileSize else {
                let span = startOverflow || endOverflow
                    ? "data offset \(info.offset) plus \(info.byteCount) bytes"
                    : "bytes \(start)..<\(end)"
                throw GGUFError("file truncated: tensor '\(info.name)' needs \(span) but the file has \(fileSize)")
            }
            ranges.append((start..<end, info.name))
        }
        let byStart = ranges.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (previous, next) in zip(byStart, byStart.dropFirst()) where previous.range.overlaps(next.range) {
            throw GGUFError("tensors '\(previous.name)' (bytes \(previous.range)) and '\(next.name)' (bytes \(next.range)) overlap")
        }
        return zip(infos, ranges).map { info, located in
            GGUFTensor(
                name: info.name, shape: info.shape, type: info.type,
                data: base + located.range.lowerBound, byteCount: info.byteCount,
                fileOffset: located.range.lowerBound)
        }
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
