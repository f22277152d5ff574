import Foundation
import SparrowGGUF
@testable import SparrowTokenizer

/// Real model files and committed llama.cpp goldens, shared by the tests.
enum ModelFixtures {
    static let modelsDirectory = FileManager.default.homeDirectoryForCurrentUser
        .appendingPathComponent(".cache/sparrow/models")

    static func modelPath(_ name: String) -> String {
        modelsDirectory.appendingPathComponent("\(name).gguf").path
    }

    static func hasModel(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: modelPath(name))
    }

    static let smollm = load("smollm2-135m")
    static let qwen = load("qwen2.5-coder-0.5b")
    static let gemma = load("gemma3-270m")

    static func tokenizer(_ name: String) -> Tokenizer? {
        switch name {
        case "smollm2-135m": smollm
        case "qwen2.5-coder-0.5b": qwen
        case "gemma3-270m": gemma
        default: nil
        }
    }

    private static func load(_ name: String) -> Tokenizer? {
        guard hasModel(name) else { return nil }
        do {
            return try Tokenizer(gguf: GGUFFile(path: modelPath(name)))
        } catch {
            fatalError("cannot load the tokenizer of \(name): \(error)")
        }
    }
}
