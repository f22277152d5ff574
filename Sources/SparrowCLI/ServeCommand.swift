import ArgumentParser
import Foundation
import SparrowEngine
import SparrowServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API.",
        discussion: "The method flags set defaults; each request can change them in its \"sparrow\" field (see the README)."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var gemFilterOptions: GemFilterOptions
    @OptionGroup var speculationFlags: SpeculationFlags
    @OptionGroup var sparsityOptions: SparsityOptions

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(parsing: .unconditional, help: "The port to listen on (0: any free port).")
    var port = 8080

    @Option(parsing: .unconditional, help: "Sequences generated at once, each with its own cache.")
    var parallel = 4

    @Option(name: .customLong("queue-size"), parsing: .unconditional, help: "Requests that may wait for a slot before the server answers 503.")
    var queueSize = 32

    @Option(help: "The model name clients use (default: the catalog name or the file's name).")
    var alias: String?

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be within 0...65535") }
        if parallel < 1 { throw ValidationError("--parallel must be at least 1") }
        if queueSize < 0 { throw ValidationError("--queue-size must be 0 or more") }
        if speculationFlags.compare { throw ValidationError("--compare is for `sparrow generate`") }
        if speculationFlags.draftAlways { throw ValidationError("--draft-always is for `sparrow generate`") }
    }

    func run() async throws {
        try rejectInvalidUTF8Arguments()
        let model = try modelOptions.load()
        let draftModel = try speculationFlags.loadDraftModel()
        var configuration = ServerConfiguration(modelID: alias ?? modelID, contextSize: modelOptions.contextSize(for: model))
        configuration.host = host
        configuration.port = port
        configuration.slots = parallel
        configuration.queueCapacity = queueSize
        configuration.defaults = defaults
        configuration.draftHeadCandidates = speculationFlags.draftHeadCandidates
        let server = try OpenAIServer(model: model, draftModel: draftModel, sparsity: try sparsityOptions.sidecar(for: model),
                                      modelSHA256: try ModelStore().sha256(ofModelAt: model.file.path), configuration: configuration, pool: modelOptions.pool())
        let served = server.configuration
        do {
            try await server.run { port in
                FileHandle.standardError.write(Data("sparrow: serving \(served.modelID) on http://\(host):\(port) (\(parallel) slots of \(served.contextSize) tokens)\n".utf8))
            }
        } catch {
            throw CLIError("serving on \(host):\(port) failed: \(error)")
        }
    }

    /// The catalog name, or the file's name without its extension.
    private var modelID: String {
        guard modelOptions.model.contains("/") || modelOptions.model.hasSuffix(".gguf") else { return modelOptions.model }
        return URL(fileURLWithPath: modelOptions.model).deletingPathExtension().lastPathComponent
    }

    /// The methods the flags switch on, as request defaults.
    private var defaults: SparrowExtension {
        var defaults = SparrowExtension()
        if gemFilterOptions.gemfilter {
            let s = gemFilterOptions.selection
            defaults.gemfilter = .on(GemFilterSettings(layer: gemFilterOptions.layer, keep: s.keep, keepEdges: s.trailingWindow, scoring: s.scoring.rawValue,
                                                       window: s.queryWindow, attentionWindow: s.attentionWindow))
        }
        let f = speculationFlags
        if f.lookup {
            defaults.lookup = .on(LookupSettings(ngram: f.lookupNgram, minNgram: f.lookupMinNgram, draftMax: f.draftMax, draftMin: f.draftMin))
        }
        if f.draftModel != nil {
            defaults.draft = .on(DraftSettings(draftMax: f.draftMax, draftMin: f.draftMin, minP: f.draftMinP))
        }
        if sparsityOptions.sparsity != nil {
            defaults.sparsity = .on(SparsitySettings(rule: sparsityOptions.rule.rawValue, level: sparsityOptions.level,
                                                     headCandidates: sparsityOptions.headCandidates, headRank: sparsityOptions.headRank,
                                                     upLevel: sparsityOptions.upLevel))
        }
        return defaults
    }
}
