import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model (and an acceleration method) on real text.",
        subcommands: [PerplexityCommand.self, SparsityFrontierCommand.self, NeedleCommand.self]
    )
}

/// Needle in a haystack: retrieval over a grid of prompt lengths and needle depths, with full
/// attention, GemFilter or a baseline that keeps the last tokens (optionally attention sinks).
struct NeedleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle",
        abstract: "Hide a sentence in real text at several depths and lengths; check the model retrieves it."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var needleOptions: NeedleOptions
    @OptionGroup var gemFilterOptions: GemFilterOptions

    @Option(help: "Instead of GemFilter, keep the last --gemfilter-keep tokens (last) or the first 4 and the rest last (sinks).")
    var baseline: Baseline?

    @Flag(help: "Print one JSON object instead of the grid.")
    var json = false

    enum Baseline: String, ExpressibleByArgument { case last, sinks }

    func validate() throws {
        if baseline != nil && gemFilterOptions.gemfilter { throw ValidationError("choose --gemfilter or --baseline, not both") }
    }

    struct Report: Encodable {
        let model: String
        let method: String
        let cells: [NeedleEvaluation.Cell]
    }

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let model = try modelOptions.load()
        let filter: (any PromptFilter)? = switch baseline {
        case .last: LastTokensFilter(keep: gemFilterOptions.keep)
        case .sinks: AttentionSinksFilter(keep: gemFilterOptions.keep)
        case nil: try gemFilterOptions.filter(for: model)
        }
        let evaluation = try needleOptions.evaluation(model: model, threads: modelOptions.threads)
        let cells = try evaluation.grid(lengths: needleOptions.lengthList(), depths: needleOptions.depthList(),
                                        filter: filter) { cell in
            guard !json else { return }
            let kept = cell.needleKept.map { ", \($0) of \(cell.needleTokens) needle tokens kept" } ?? ""
            FileHandle.standardError.write(Data("length \(cell.length) depth \(cell.depth)%: \(cell.hit ? "hit" : "miss") (\(cell.answer.debugDescription))\(kept)\n".utf8))
        }
        let method = filter?.name ?? "full attention"
        if json {
            try printJSON(Report(model: model.file.path, method: method, cells: cells))
        } else {
            print(Self.grid(cells, method: method))
        }
    }

    /// Rows: lengths; columns: depths; each cell "hit|miss, time to first token".
    static func grid(_ cells: [NeedleEvaluation.Cell], method: String) -> String {
        let depths = Array(Set(cells.map(\.depth))).sorted(), lengths = Array(Set(cells.map(\.length))).sorted()
        var lines = ["\(method): needle hits, time to first token", "",
                     "| length | " + depths.map { "\($0)%" }.joined(separator: " | ") + " | hits | peak RSS |",
                     "|---|" + String(repeating: "---|", count: depths.count + 2)]
        for length in lengths {
            let row = cells.filter { $0.length == length }
            let entries = depths.map { depth in
                row.first { $0.depth == depth }.map { "\($0.hit ? "hit" : "miss") \(String(format: "%.1f", $0.ttftMs / 1000)) s" } ?? ""
            }
            let peak = row.map(\.peakRssBytes).max() ?? 0
            lines.append("| \(length) | " + entries.joined(separator: " | ")
                + " | \(row.filter(\.hit).count)/\(row.count) | \(String(format: "%.0f", Double(peak) / 1048576)) MiB |")
        }
        return lines.joined(separator: "\n")
    }
}

/// The needle prompts shared by `eval needle` and `calibrate gemfilter`.
struct NeedleOptions: ParsableArguments {
    @Option(help: "Prompt lengths in tokens, e.g. 1k,2k,4k.")
    var lengths = "1k,2k,4k"

    @Option(help: "Needle depths in percent of the text.")
    var depths = "0,25,50,75,100"

    @Option(help: "A file of real text to hide the needle in.")
    var haystack: String

    @Option(help: "The sentence to hide.")
    var needle = "The special magic number mentioned in this text is 7294."

    @Option(help: "The question asked after the text.")
    var question = "What is the special magic number mentioned in the text above? Answer with the number only."

    @Option(help: "The answer that counts as a hit when the reply contains it.")
    var answer = "7294"

    @Flag(help: "Plain text instead of the model's chat template (base models).")
    var raw = false

    func validate() throws {
        if try lengthList().contains(where: { $0 < 16 }) { throw ValidationError("--lengths must be at least 16 tokens each") }
        if try depthList().contains(where: { !(0...100).contains($0) }) { throw ValidationError("--depths must be within 0...100") }
        if answer.isEmpty { throw ValidationError("--answer must not be empty") }
    }

    func lengthList() throws -> [Int] { try Self.parse(lengths, name: "--lengths") }
    func depthList() throws -> [Int] { try Self.parse(depths, name: "--depths") }

    /// "1k,2k,500" -> [1024, 2048, 500].
    static func parse(_ list: String, name: String) throws -> [Int] {
        try list.split(separator: ",").map { item in
            let text = item.trimmingCharacters(in: .whitespaces).lowercased()
            let multiplier = text.hasSuffix("k") ? 1024 : 1
            guard let value = Int(text.dropLast(multiplier == 1 ? 0 : 1)) else {
                throw ValidationError("\(name): \(item) is not a number (e.g. 2k or 1500)")
            }
            return value * multiplier
        }
    }

    func evaluation(model: LanguageModel, threads: Int?) throws -> NeedleEvaluation {
        let text = try readText(file: haystack, role: "haystack")
        let builder = try NeedleHaystack(model: model, haystack: text, needle: needle, question: question, chat: !raw)
        let pool = ThreadPool(threadCount: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        return NeedleEvaluation(model: model, haystack: builder, answer: answer, pool: pool)
    }
}
