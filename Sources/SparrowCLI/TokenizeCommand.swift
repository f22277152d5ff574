import ArgumentParser
import Foundation
import SparrowEngine

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text."
    )

    @Option(name: [.customShort("m"), .long], help: "A catalog name or the path of a GGUF file.")
    var model = ModelCatalog.defaultModelName

    @Option(name: [.customShort("p"), .long], help: "The text to tokenize.")
    var prompt: String?

    @Option(name: [.customShort("f"), .long], help: "Read the text from a file (- for standard input).")
    var file: String?

    @Flag(name: .customLong("no-special"), help: "Add no BOS and treat special-token text as plain text.")
    var noSpecial = false

    @Flag(help: "Print a JSON array of ids.")
    var json = false

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let text = try readPrompt(inline: prompt, file: file)
        let model = try LanguageModel(path: ModelStore().resolve(model, pullIfMissing: true))
        let ids = model.tokenizer.encode(text, addSpecial: !noSpecial, parseSpecial: !noSpecial)
        if json {
            print("[" + ids.map(String.init).joined(separator: ",") + "]")
        } else {
            for id in ids { print("\(id)\t\(model.tokenizer.tokenText(id).debugDescription)") }
        }
    }
}
