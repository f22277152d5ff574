import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

/// Perplexity of a model over real text, in windows (see `PerplexityEvaluation`).
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Token-level perplexity over a text file, in windows of --ctx tokens."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sparsityOptions: SparsityOptions

    @Option(help: "A file of real text (UTF-8).")
    var text: String

    @Option(parsing: .unconditional, help: "Tokens per window, the BOS included where the model adds one.")
    var ctx = 512

    @Option(parsing: .unconditional, help: "Text tokens between window starts (default: a window's, so windows do not overlap).")
    var stride: Int?

    @Option(parsing: .unconditional, help: "Use only the text's first N tokens.")
    var maxTokens: Int?

    @Flag(help: "Score each token with a decode step rather than each window in one batch (implied by a decode-time method).")
    var stepwise = false

    @Flag(help: "Print one JSON object (perplexity, tokens, mean_nll, ...).")
    var json = false

    func validate() throws {
        if ctx < 2 { throw ValidationError("--ctx must be at least 2") }
        if let stride, stride < 1 { throw ValidationError("--stride must be at least 1") }
        if let maxTokens, maxTokens < 2 { throw ValidationError("--max-tokens must be at least 2") }
        if modelOptions.contextSize != nil { throw ValidationError("perplexity sizes its context with --ctx, not --ctx-size") }
    }

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let model = try modelOptions.load()
        var tokens = model.tokenizer.encode(try readText(file: text, role: "text"), addSpecial: false, parseSpecial: false)
        if let maxTokens { tokens = Array(tokens.prefix(maxTokens)) }
        let pool = modelOptions.pool()
        let session = Session(model: model.transformer, contextSize: ctx, pool: pool)
        let sparsity = try sparsityOptions.method(for: model, pool: pool)
        session.decodeFeedForward = sparsity
        if let sparsity, !json {
            FileHandle.standardError.write(Data("\(sparsity.rule) sparsity per layer: \(sparsity.layerSparsity.map { String(format: "%.1f", $0) }.joined(separator: " "))\n".utf8))
        }
        let evaluation = try PerplexityEvaluation(contextSize: ctx, stride: stride, stepwise: stepwise || session.decodeFeedForward != nil,
                                                  bos: model.tokenizer.addsBOS ? model.tokenizer.bosToken : nil)
        let result = try evaluation.run(tokens, in: session) { done, total in
            if !json { FileHandle.standardError.write(Data("\rwindow \(done)/\(total)".utf8)) }
        }
        if json {
            try printJSON(result)
        } else {
            FileHandle.standardError.write(Data("\n".utf8))
            print(String(format: "perplexity %.4f over %d tokens (mean NLL %.5f), %.1f s, %.1f tokens/s",
                         result.perplexity, result.tokens, result.meanNll, result.seconds, Double(result.tokens) / result.seconds))
        }
    }
}
