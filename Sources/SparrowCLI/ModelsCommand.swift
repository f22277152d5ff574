import ArgumentParser
import Foundation
import SparrowEngine

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List, download and locate the catalog models.",
        subcommands: [List.self, Pull.self, Path.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the catalog models and whether each is downloaded.")

        func run() {
            let store = ModelStore()
            print("models directory: \(store.directory.path)")
            for model in ModelCatalog.models {
                let size = String(format: "%7.1f MB", Double(model.byteCount) / 1_000_000)
                let state = store.isPresent(model) ? "present" : "absent "
                let marker = model.name == ModelCatalog.defaultModelName ? " (default)" : ""
                print("\(model.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(size)  \(state)  \(model.description)\(marker)")
            }
        }
    }

    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download, verify and cache a catalog model.")

        @Argument(help: "Catalog model name (see `sparrow models list`).")
        var name: String

        func run() throws {
            do {
                print(try ModelStore().pull(name))
            } catch let error as ModelStoreError {
                throw ValidationFailure(error.description)
            }
        }
    }

    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the cached file of a downloaded catalog model.")

        @Argument(help: "Catalog model name (see `sparrow models list`).")
        var name: String

        func run() throws {
            let store = ModelStore()
            guard let model = ModelCatalog.model(named: name) else {
                throw ValidationFailure("unknown model \(name): run `sparrow models list`")
            }
            guard store.isPresent(model) else {
                throw ValidationFailure("model \(name) is not downloaded: run `sparrow models pull \(name)`")
            }
            print(store.path(for: name))
        }
    }
}

/// A failure whose message is printed as is (no usage text) with a non-zero exit status.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
