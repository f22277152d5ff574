import Foundation
import SparrowTestSupport
import SparrowGGUF
import SparrowKernels
import Testing

private let everyScalar: [(String, GGUFValue)] = [
    ("t.u8", .uint8(250)), ("t.i8", .int8(-7)), ("t.u16", .uint16(65000)), ("t.i16", .int16(-300)),
    ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(-1.5e-3)),
    ("t.bool", .bool(true)), ("t.false", .bool(false)), ("t.str", .string("héllo ✓ 🐦")), ("t.empty", .string("")),
    ("t.u64", .uint64(UInt64.max)), ("t.i64", .int64(Int64.min)), ("t.f64", .float64(3.141592653589793)),
]

private let arrays: [(String, GGUFValue)] = [
    ("a.strings", .array([.string("a"), .string(""), .string("ü")])),
    ("a.ints", .array([.int32(1), .int32(-2), .int32(3)])),
    ("a.floats", .array([.float32(0.5), .float32(-2)])),
    ("a.empty", .array([])),
    ("a.nested", .array([.array([.uint8(1), .uint8(2)]), .array([]), .array([.uint8(3)])])),
    ("a.deep", .array([.array([.array([.string("x")])])])),
]

/// A small file with tensors of several types, the last one ending exactly at end of file.
private func sampleWriter(version: UInt32 = 3) -> GGUFTestWriter {
    var writer = GGUFTestWriter(version: version)
    writer.metadata = [("general.architecture", .string("test")), ("t.tokens", .array([.string("a"), .string("bc")]))]
    writer.tensors = [
        .init(name: "f32", shape: [3, 2], typeID: 0, data: (0..<24).map { UInt8($0) }),
        .init(name: "q8", shape: [32], typeID: 8, data: [UInt8](repeating: 7, count: 34)),
        .init(name: "f16", shape: [5], typeID: 1, data: [UInt8](repeating: 9, count: 10)),
    ]
    return writer
}

@Suite struct GGUFReaderTests {
    let files = TemporaryDirectory()

    @Test(arguments: [UInt32(2), 3])
    func roundTripsEveryValueType(version: UInt32) throws {
        var writer = GGUFTestWriter(version: version)
        writer.metadata = everyScalar + arrays
        let file = try GGUFFile(path: files.write(writer.bytes()))
        #expect(file.version == version)
        #expect(file.metadata.count == everyScalar.count + arrays.count)
        for (key, value) in everyScalar + arrays {
            #expect(file.metadata[key] == value, "\(key)")
        }
        #expect(file.tensors.isEmpty)
    }

    @Test func typedAccessors() throws {
        var writer = GGUFTestWriter()
        writer.metadata = everyScalar + arrays
        let file = try GGUFFile(path: files.write(writer.bytes()))
        #expect(file.int("t.u8") == 250)
        #expect(file.int("t.i64") == Int(Int64.min))
        #expect(file.int("t.u64") == nil)  // does not fit in Int
        #expect(file.int("t.str") == nil)
        #expect(file.int("missing") == nil)
        #expect(file.float("t.f32") == -1.5e-3)
        #expect(file.float("t.f64") == Float(3.141592653589793))
        #expect(file.float("t.i16") == -300)
        #expect(file.bool("t.bool") == true)
        #expect(file.bool("t.u8") == nil)
        #expect(file.string("t.str") == "héllo ✓ 🐦")
        #expect(file.stringArray("a.strings") == ["a", "", "ü"])
        #expect(file.stringArray("a.ints") == nil)
        #expect(file.intArray("a.ints") == [1, -2, 3])
        #expect(file.floatArray("a.floats") == [0.5, -2])
        #expect(file.floatArray("a.ints") == [1, -2, 3])
        #expect(file.intArray("a.empty") == [])
        #expect(file.metadata["a.nested"]?.array?[0].array?[1].int == 2)
    }

    @Test(arguments: [UInt32(2), 3])
    func tensorsPointIntoTheFile(version: UInt32) throws {
        let writer = sampleWriter(version: version)
        let bytes = writer.bytes()
        let file = try GGUFFile(path: files.write(bytes))
        #expect(file.fileSize == bytes.count)
        #expect(file.tensors.map(\.name) == ["f32", "q8", "f16"])
        #expect(file.dataOffset % 32 == 0)
        for (tensor, written) in zip(file.tensors, writer.tensors) {
            #expect(tensor.shape == written.shape)
            #expect(tensor.byteCount == written.data.count)
            #expect(tensor.fileOffset % 32 == 0)
            #expect(Array(UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount)) == written.data)
        }
        let q8 = try #require(file.tensor(named: "q8"))
        #expect(q8.type == .q8_0)
        #expect(q8.elementCount == 32)
        #expect(file.tensor(named: "f32")?.elementCount == 6)
        #expect(file.tensor(named: "f16")?.type == .f16)
        #expect(file.tensor(named: "nope") == nil)
    }

    @Test(arguments: [1, 8, 64, 256])
    func honoursCustomAlignment(alignment: Int) throws {
        var writer = sampleWriter()
        writer.metadata.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        let file = try GGUFFile(path: files.write(writer.bytes()))
        #expect(file.alignment == alignment)
        #expect(file.dataOffset % alignment == 0)
        for (tensor, written) in zip(file.tensors, writer.tensors) {
            #expect((tensor.fileOffset - file.dataOffset) % alignment == 0)
            #expect(Array(UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount)) == written.data)
        }
    }

    @Test(arguments: [GGUFValue.uint32(0), .uint32(48), .uint64(32), .string("32")])
    func rejectsBadAlignment(value: GGUFValue) {
        var writer = sampleWriter()
        writer.metadata.append(("general.alignment", value))
        expectError(writer.bytes(), "general.alignment must be a uint32 power of two")
    }

    @Test func everyTruncationThrows() {
        let bytes = sampleWriter().bytes()
        for length in 0..<bytes.count {
            let message = files.openError(Array(bytes[..<length]))
            #expect(message != nil, "prefix of \(length) bytes opened")
        }
        #expect(files.openError(bytes) == nil)
    }

    @Test func truncatedTensorDataIsReported() {
        let bytes = sampleWriter().bytes()
        expectError(Array(bytes.dropLast()), "file truncated: tensor 'f16' needs bytes \(bytes.count - 10)..<\(bytes.count) but the file has \(bytes.count - 1)")
    }

    @Test func randomCorruptionThrowsOrOpensButNeverCrashes() {
        let bytes = sampleWriter().bytes()
        var generator = SplitMix64(seed: 42)
        var failures = 0
        for _ in 0..<1000 {
            var corrupt = bytes
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<corrupt.count, using: &generator)
                corrupt[index] = [0, 0xFF, 0x80, UInt8.random(in: 0...255, using: &generator)].randomElement(using: &generator)!
            }
            if files.openError(corrupt) != nil { failures += 1 }
        }
        #expect(failures > 100)  // most corruptions of the header are caught
    }

    @Test func missingFileAndNonFiles() {
        let missing = files.url.appendingPathComponent("absent.gguf").path
        let missingError = #expect(throws: GGUFError.self) { try GGUFFile(path: missing) }
        #expect(missingError?.description == "no such file: \(missing)")
        let directoryError = #expect(throws: GGUFError.self) { try GGUFFile(path: files.url.path) }
        #expect(directoryError?.description == "not a regular file: \(files.url.path)")
        expectError([], "not a GGUF file (the file is empty)")
        expectError([0x47, 0x47], "not a GGUF file (only 2 bytes)")
    }

    @Test func rejectsNonGGUFAndUnsupportedVersions() {
        expectError(Array("PK\u{3}\u{4}and more bytes here".utf8), "not a GGUF file (magic 0x504B0304, expected 0x47475546 \"GGUF\")")
        var writer = sampleWriter(version: 1)
        expectError(writer.bytes(), "unsupported GGUF version 1 (supported: 2 and 3)")
        writer.version = 0x0300_0000
        expectError(writer.bytes(), "big-endian GGUF files are not supported")
    }

    @Test func rejectsAbsurdCounts() {
        var header = ByteBuilder()
        header.append(UInt32(0x4655_4747)); header.append(UInt32(3))
        var tensors = header
        tensors.append(UInt64.max); tensors.append(UInt64(0))
        expectError(tensors.bytes, "tensor count 18446744073709551615 is too large")
        var metadata = header
        metadata.append(UInt64(0)); metadata.append(UInt64(1) << 40)
        expectError(metadata.bytes, "metadata entry count 1099511627776 is impossible")

        var array = metadataHeader(key: "big", typeID: 9)
        array.append(UInt32(8)); array.append(UInt64(1) << 60)
        expectError(array.bytes, "array length 1152921504606846976 is impossible")
        var string = metadataHeader(key: "s", typeID: 8)
        string.append(UInt64(1) << 62)
        expectError(string.bytes, "file truncated: a string of 4611686018427387904 bytes needs")
        var key = header
        key.append(UInt64(0)); key.append(UInt64(1)); key.append(UInt64(1_000_000)); key.append(UInt64(0))
        expectError(key.bytes, "reading the key of metadata entry 0")
    }

    @Test func rejectsUnknownValueTypes() {
        var scalar = metadataHeader(key: "odd", typeID: 13)
        scalar.append(UInt32(0))
        expectError(scalar.bytes, "unknown metadata value type 13 (at byte 39, reading metadata 'odd')")
        var element = metadataHeader(key: "odd", typeID: 9)
        element.append(UInt32(99)); element.append(UInt64(1)); element.append(UInt32(0))
        expectError(element.bytes, "unknown metadata value type 99")
    }

    @Test func rejectsBadUTF8BoolsDuplicatesAndDeepNesting() {
        var value = metadataHeader(key: "bad", typeID: 8)
        value.appendRawString([0x61, 0xC3, 0x28])
        expectError(value.bytes, "invalid UTF-8 in a string of 3 bytes (at byte 47, reading metadata 'bad')")
        var key = ByteBuilder()
        key.append(UInt32(0x4655_4747)); key.append(UInt32(3)); key.append(UInt64(0)); key.append(UInt64(1))
        key.appendRawString([0xFF]); key.append(UInt32(0)); key.append(UInt8(0))
        expectError(key.bytes, "invalid UTF-8 in a string of 1 bytes (at byte 32, reading the key of metadata entry 0)")

        var bool = metadataHeader(key: "flag", typeID: 7)
        bool.append(UInt8(2))
        expectError(bool.bytes, "invalid bool value 2")

        var writer = GGUFTestWriter()
        writer.metadata = [("k", .uint8(1)), ("k", .uint8(2))]
        expectError(writer.bytes(), "duplicate metadata key 'k'")

        var deep = GGUFValue.uint8(0)
        for _ in 0..<17 { deep = .array([deep]) }
        writer.metadata = [("deep", deep)]
        expectError(writer.bytes(), "arrays nested more than 16 deep")
    }

    @Test func rejectsBadTensorInfos() {
        var writer = sampleWriter()
        writer.tensors[1].typeID = 77
        expectError(writer.bytes(), "tensor 'q8' has unknown tensor type id 77")

        writer = sampleWriter()
        writer.tensors[2].name = "f32"
        expectError(writer.bytes(), "duplicate tensor name 'f32' (tensors 0 and 2)")

        writer = sampleWriter()
        writer.tensors[0].shape = [1, 1, 1, 1, 6]
        expectError(writer.bytes(), "tensor 'f32' has 5 dimensions (1 to 4 allowed)")

        writer = sampleWriter()
        writer.tensors[1].shape = [16, 2]
        expectError(writer.bytes(), "tensor 'q8' of type q8_0 has rows of 16 elements, not a multiple of its block size 32")

        writer = sampleWriter()
        writer.tensors[0].shape = [1 << 40, 1 << 30]
        expectError(writer.bytes(), "tensor 'f32' has too many elements")

        writer = sampleWriter()
        writer.tensors[0].shape = [1 << 40, 1 << 22]
        expectError(writer.bytes(), "tensor 'f32' of shape [1099511627776, 4194304] is too large")

        writer = sampleWriter()
        writer.tensors[2].offset = 40
        expectError(writer.bytes(), "tensor 'f16' data offset 40 is not a multiple of the alignment 32")
    }

    @Test func rejectsTensorsOutsideTheFileOrOverlapping() {
        var writer = sampleWriter()
        writer.tensors[2].offset = 32  // on top of "q8", which occupies 32..<66
        expectError(writer.bytes(), "tensors 'q8' (bytes ")
        expectError(writer.bytes(), "and 'f16' (bytes ")
        expectError(writer.bytes(), "overlap")

        writer = sampleWriter()
        var bytes = writer.bytes()
        let patched = withOffset(UInt64(Int64.max - 1) / 32 * 32, ofTensorNamed: "f16", in: &bytes)
        #expect(patched)
        expectError(bytes, "file truncated: tensor 'f16' needs data offset")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realModel("smollm2-135m"))))
    func opensSmolLM2() throws {
        let file = try GGUFFile(path: realModel("smollm2-135m"))
        #expect(file.version == 3)
        #expect(file.string("general.architecture") == "llama")
        #expect(file.int("llama.block_count") == 30)
        #expect(file.int("llama.embedding_length") == 576)
        #expect(file.stringArray("tokenizer.ggml.tokens")?.count == 49152)
        #expect(file.intArray("tokenizer.ggml.token_type")?.count == 49152)
        #expect(file.string("tokenizer.ggml.pre") == "smollm")
        #expect(file.tensors.count == 272)
        let types = Dictionary(grouping: file.tensors, by: \.type).mapValues(\.count)
        #expect(types == [.q4_1: 210, .f32: 61, .q8_0: 1])
        let embeddings = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embeddings.shape == [576, 49152])
        #expect(embeddings.type == .q8_0)
        #expect(file.tensor(named: "blk.29.attn_q.weight")?.type == .q4_1)
        #expect(file.tensor(named: "blk.0.attn_norm.weight")?.type == .f32)
        let last = try #require(file.tensors.max { $0.fileOffset < $1.fileOffset })
        #expect(last.fileOffset + last.byteCount == file.fileSize)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realModel("gemma3-270m"))))
    func opensGemma3WithItsLargeVocabulary() throws {
        let file = try GGUFFile(path: realModel("gemma3-270m"))
        #expect(file.string("general.architecture") == "gemma3")
        #expect(file.stringArray("tokenizer.ggml.tokens")?.count == 262_144)
        #expect(file.floatArray("tokenizer.ggml.scores")?.count == 262_144)
        #expect(file.intArray("tokenizer.ggml.token_type")?.count == 262_144)
        #expect(Set(file.tensors.map(\.type)).isSubset(of: [.f32, .q8_0, .q5_0, .q4_K, .q6_K]))
    }
}

private func realModel(_ name: String) -> String {
    FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sparrow/models/\(name).gguf").path
}

/// A file header followed by one metadata entry's key and value type, value left to the caller.
private func metadataHeader(key: String, typeID: UInt32) -> ByteBuilder {
    var builder = ByteBuilder()
    builder.append(UInt32(0x4655_4747)); builder.append(UInt32(3))
    builder.append(UInt64(0)); builder.append(UInt64(1))
    builder.appendString(key)
    builder.append(typeID)
    return builder
}

/// Rewrites the data offset of the tensor info whose name is `name`.
private func withOffset(_ offset: UInt64, ofTensorNamed name: String, in bytes: inout [UInt8]) -> Bool {
    var nameField = ByteBuilder()
    nameField.appendString(name)
    guard let start = bytes.indices.first(where: { bytes[$0...].starts(with: nameField.bytes) }) else { return false }
    let dimensionCount = Int(bytes[start + nameField.bytes.count])
    let offsetAt = start + nameField.bytes.count + 4 + 8 * dimensionCount + 4
    withUnsafeBytes(of: offset.littleEndian) { bytes.replaceSubrange(offsetAt..<offsetAt + 8, with: $0) }
    return true
}

extension GGUFReaderTests {
    func expectError(_ bytes: [UInt8], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let message = files.openError(bytes)
        #expect(message?.contains(expected) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
    }
}
