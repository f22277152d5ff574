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
            let store = ModelStore()
            let name = name
            let handlers = onInterrupt { store.removeLeftovers(of: name) }
            defer { handlers.forEach { $0.cancel() } }
            do {
                print(try store.pull(name))
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

/// Runs `cleanup` and exits when SIGINT or SIGTERM arrives, instead of dying with a partial
/// download on disk. Keep the returned sources alive while the handler should stay installed.
private func onInterrupt(_ cleanup: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { signalNumber in
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler {
            cleanup()
            FileHandle.standardError.write(Data("interrupted; partial download removed\n".utf8))
            exit(128 + signalNumber)
        }
        source.resume()
        return source
    }
}

/// A failure whose message is printed as is (no usage text) with a non-zero exit status.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
