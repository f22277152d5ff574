import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

/// Contextual sparsity's frontier (see `SparsityFrontier`): perplexity and decode speed per
/// rule and level against dense, in one run.
struct SparsityFrontierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparsity",
        abstract: "Perplexity and decode speed of contextual sparsity against dense, per rule and level, in one run."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A sidecar from `sparrow calibrate sparsity` (\"default\": the one it saved for this model).")
    var sparsity = "default"

    @Option(help: "Held-out text (not the calibration text).")
    var text: String

    @Option(help: "Rules, e.g. predictor,cats,teal.")
    var rules = "predictor,cats,teal"

    @Option(help: "Mean sparsity levels, e.g. 0.3,0.5,0.7.")
    var levels = "0.3,0.5,0.7"

    @Option(parsing: .unconditional, help: "Tokens whose logits a step computes exactly (candidate head) at every point; 0: dense head.")
    var headCandidates = 0

    @Option(parsing: .unconditional, help: "The candidate head's preview rank.")
    var headRank = 128

    @Option(help: "For the teal rule: fractions of up's rows skipped by the gate, each a point per level (calibrated levels, e.g. 0,0.3; 0: up in full).")
    var upLevels = "0"

    @Option(parsing: .unconditional, help: "Tokens per perplexity window.")
    var ctx = 512

    @Option(parsing: .unconditional, help: "Use only the text's first N tokens for perplexity.")
    var maxTokens = 2048

    @Option(parsing: .unconditional, help: "Generated tokens per decode timing.")
    var decodeTokens = 128

    @Option(name: [.customShort("r"), .customLong("repetitions")], parsing: .unconditional, help: "Paired dense and sparse decode timings per point.")
    var repetitions = 5

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if ctx < 2 { throw ValidationError("--ctx must be at least 2") }
        if maxTokens < 2 { throw ValidationError("--max-tokens must be at least 2") }
        if decodeTokens < 1 { throw ValidationError("--decode-tokens must be at least 1") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        _ = try ruleList()
        if try numbers(levels, flag: "--levels").contains(where: { !(0..<1).contains($0) }) { throw ValidationError("--levels must be within 0..<1") }
        try SparsityOptions.validateHead(candidates: headCandidates, rank: headRank, flags: ("--head-candidates", "--head-rank"))
        if try numbers(upLevels, flag: "--up-levels").contains(where: { !(0..<1).contains($0) }) {
            throw ValidationError("--up-levels must be within 0..<1")
        }
        if modelOptions.contextSize != nil { throw ValidationError("this command sizes its context with --ctx, not --ctx-size") }
    }

    func ruleList() throws -> [SparsityRule] {
        try rules.split(separator: ",").map { name in
            guard let rule = SparsityRule(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--rules: unknown rule \(name) (predictor, cats or teal)")
            }
            return rule
        }
    }

    func numbers(_ list: String, flag: String) throws -> [Double] {
        try list.split(separator: ",").map { item in
            guard let value = Double(item.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("\(flag): \(item) is not a number") }
            return value
        }
    }

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let model = try modelOptions.load()
        var options = SparsityOptions()
        options.sparsity = sparsity
        guard let sidecar = try options.sidecar(for: model) else { return }
        let tokens = Array(model.tokenizer.encode(try readText(file: text, role: "text"), addSpecial: false, parseSpecial: false).prefix(maxTokens))
        let evaluation = try PerplexityEvaluation(contextSize: ctx, stepwise: true, bos: model.tokenizer.addsBOS ? model.tokenizer.bosToken : nil)
        let pool = modelOptions.pool()
        var frontier = SparsityFrontier(model: model, sidecar: sidecar, evaluation: evaluation, pool: pool)
        frontier.decodeTokens = decodeTokens
        frontier.repetitions = repetitions
        frontier.headCandidates = headCandidates
        frontier.headRank = headRank
        frontier.upLevels = try numbers(upLevels, flag: "--up-levels")
        let report = try frontier.run(tokens, rules: ruleList(), levels: numbers(levels, flag: "--levels")) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        if json {
            try printJSON(report, pretty: true)
        } else {
            print("| rule | mean sparsity | up skipped | perplexity | vs dense | decode t/s | dense t/s | speed-up |")
            print("|---|---|---|---|---|---|---|---|")
            print(String(format: "| dense | 0 | 0 | %.3f | 1.000x | | | |", report.densePerplexity))
            for p in report.points {
                print(String(format: "| %@ | %.2f | %.2f | %.3f | %.3fx | %.1f | %.1f | %.2fx |", p.rule, p.level, p.upSparsity, p.perplexity, p.perplexityRatio,
                             p.decodeTokensPerSecond, p.denseDecodeTokensPerSecond, p.speedup))
            }
        }
    }
}
