import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

/// Options every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "A catalog name (see `sparrow models list`) or the path of a GGUF file.")
    var model = ModelCatalog.defaultModelName

    @Option(name: [.customShort("t"), .long], parsing: .unconditional, help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: [.customShort("c"), .customLong("ctx-size")], parsing: .unconditional, help: "Context size in tokens (default: the model's, at most 4096).")
    var contextSize: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let contextSize, contextSize < 2 { throw ValidationError("--ctx-size must be at least 2") }
    }

    func load() throws -> LanguageModel {
        let path = try ModelStore().resolve(model, pullIfMissing: true)
        return try LanguageModel(path: path)
    }

    func session(for model: LanguageModel) throws -> Session {
        Session(model: model.transformer, contextSize: contextSize(for: model), pool: pool())
    }

    /// The context size asked for, else the model's default.
    func contextSize(for model: LanguageModel) -> Int { contextSize ?? model.defaultContextSize }

    /// A pool of the threads asked for (default: all cores).
    func pool() -> ThreadPool { ThreadPool(threadCount: threads ?? ProcessInfo.processInfo.activeProcessorCount) }
}

/// Errors shown to the user as one line on stderr with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a text file ("-" is standard input), rejecting invalid UTF-8; `role` names it in errors.
func readText(file path: String, role: String) throws -> String {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read \(role) file \(path)")
        }
        data = contents
    }
    guard let text = String(validating: data, as: UTF8.self) else {
        throw CLIError("\(role) file \(path) is not valid UTF-8")
    }
    return text
}

/// Reads a prompt given inline or from a file ("-" is standard input), rejecting invalid UTF-8.
func readPrompt(inline: String?, file: String?) throws -> String {
    switch (inline, file) {
    case (let text?, nil):
        return text
    case (nil, let path?):
        return try readText(file: path, role: "prompt")
    case (nil, nil):
        throw ValidationError("give a prompt with -p TEXT or -f FILE")
    case (_?, _?):
        throw ValidationError("give either -p or -f, not both")
    }
}

/// Command-line arguments reach Swift already repaired (invalid bytes become U+FFFD), so check
/// the raw bytes to refuse invalid UTF-8 instead of silently changing the prompt.
func rejectInvalidUTF8Arguments() throws {
    for i in 0..<Int(CommandLine.argc) {
        guard let arg = CommandLine.unsafeArgv[i] else { continue }
        let bytes = UnsafeRawBufferPointer(start: arg, count: strlen(arg))
        if String(validating: bytes, as: UTF8.self) == nil {
            throw CLIError("argument \(i) is not valid UTF-8")
        }
    }
}

/// Prints `value` as JSON on stdout: snake_case keys, sorted; one line unless `pretty`.
func printJSON(_ value: some Encodable, pretty: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
