import ArgumentParser
import Foundation
import SparrowEngine

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt (or answer a chat message) and stream the text."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var gemFilterOptions: GemFilterOptions
    @OptionGroup var speculationFlags: SpeculationFlags
    @OptionGroup var sparsityOptions: SparsityOptions

    @Option(name: [.customShort("p"), .long], help: "The prompt text.")
    var prompt: String?

    @Option(name: [.customShort("f"), .long], help: "Read the prompt from a file (- for standard input).")
    var file: String?

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional, help: "Most tokens to generate.")
    var maxTokens = 256

    @Option(name: .customLong("temp"), parsing: .unconditional, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Sample from the k most likely tokens (0: off).")
    var topK = 0

    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Nucleus sampling probability mass (1: off).")
    var topP: Float = 1

    @Option(name: .customLong("min-p"), parsing: .unconditional, help: "Drop tokens below this fraction of the top probability (0: off).")
    var minP: Float = 0

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional, help: "Penalty on recently seen tokens (1: off).")
    var repeatPenalty: Float = 1

    @Option(name: .customLong("repeat-last-n"), parsing: .unconditional, help: "Recent tokens the repetition penalty considers.")
    var repeatLastN = 64

    @Option(parsing: .unconditional, help: "Random seed (default: random).")
    var seed: UInt64?

    @Option(name: .customLong("stop"), help: "Stop when the text contains this string (repeatable).")
    var stopStrings: [String] = []

    @Flag(help: "Treat the prompt as a user message and apply the model's chat template.")
    var chat = false

    @Option(help: "System message for --chat.")
    var system: String?

    @Option(parsing: .unconditional, help: "Record the N most likely tokens' log-probabilities at each generated position.")
    var logprobs = 0

    @Flag(help: "Print one JSON object with tokens, text, timings and memory instead of streaming.")
    var json = false

    func validate() throws {
        if maxTokens < 0 { throw ValidationError("--max-tokens must be 0 or more") }
        if temperature < 0 { throw ValidationError("--temp must be 0 or more") }
        if topK < 0 { throw ValidationError("--top-k must be 0 or more") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if !(minP >= 0 && minP <= 1) { throw ValidationError("--min-p must be in [0, 1]") }
        if repeatPenalty <= 0 { throw ValidationError("--repeat-penalty must be positive") }
        if repeatLastN < 0 { throw ValidationError("--repeat-last-n must be 0 or more") }
        if logprobs < 0 { throw ValidationError("--logprobs must be 0 or more") }
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
    }

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let text = try readPrompt(inline: prompt, file: file)
        let model = try modelOptions.load()
        let session = try modelOptions.session(for: model)
        session.decodeFeedForward = try sparsityOptions.method(for: model, pool: session.pool)
        let promptTokens: [Int]
        if chat {
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: text))
            promptTokens = try model.chatPromptTokens(messages)
        } else {
            promptTokens = model.promptTokens(text)
        }

        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.stopStrings = stopStrings
        options.logprobs = logprobs > 0 ? logprobs : nil
        options.sampling.temperature = temperature
        options.sampling.topK = topK
        options.sampling.topP = topP
        options.sampling.minP = minP
        options.sampling.repeatPenalty = repeatPenalty
        options.sampling.repeatLastN = repeatLastN
        if let seed { options.sampling.seed = seed }
        options.promptFilter = try gemFilterOptions.filter(for: model)
        options.speculation = try speculationFlags.options(target: model, session: session)

        let generator = Generator(tokenizer: model.tokenizer, session: session)
        // The plain run first, so the speculative run's report is the one printed.
        var plain: GenerationResult?
        if speculationFlags.compare {
            var plainOptions = options
            plainOptions.speculation = nil
            plain = try generator.generate(prompt: promptTokens, options: plainOptions)
            session.truncate(to: 0)
        }
        let stdout = FileHandle.standardOutput
        let result = try generator.generate(prompt: promptTokens, options: options) { piece in
            if !json { stdout.write(Data(piece.utf8)) }
        }
        let peak = ProcessMemory.peakResidentBytes
        if json {
            print(try GenerationReport(result, peakResidentBytes: peak, plain: plain).jsonString())
        } else {
            print()
            let t = result.timings
            let filtered = t.keptTokens.map { kept in
                kept < t.promptTokens ? " (prefilled \(kept) kept tokens after a \(format(t.filterSeconds * 1000)) ms filter)"
                    : " (no filtering: the prompt is within the filter's \(options.promptFilter?.keep ?? kept) tokens)"
            } ?? ""
            FileHandle.standardError.write(Data("""
                ==========
                Prompt: \(t.promptTokens) tokens, \(format(t.promptTokensPerSecond)) tokens-per-sec\(filtered)
                Generation: \(t.generatedTokens) tokens, \(format(t.generationTokensPerSecond)) tokens-per-sec\(speculationLine(result, plain: plain))
                Peak memory: \(format(Double(peak) / 1e9)) GB

                """.utf8))
        }
    }

    private func format(_ x: Double) -> String { String(format: "%.3f", x) }

    private func speculationLine(_ result: GenerationResult, plain: GenerationResult?) -> String {
        guard let stats = result.speculation else { return "" }
        var line = "\nDrafts: \(stats.drafted) drafted, \(stats.accepted) accepted (\(format(stats.acceptanceRate * 100))%), "
            + "\(format(stats.meanAcceptedLength)) accepted per verification"
        if let plain {
            let speed = plain.timings.generationTokensPerSecond
            line += "\nPlain decoding: \(format(speed)) tokens-per-sec; speculative \(format(result.timings.generationTokensPerSecond / speed))x"
                + (plain.generatedTokens == result.generatedTokens ? "" : " (outputs differ)")
        }
        return line
    }
}
