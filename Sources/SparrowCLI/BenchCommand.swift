import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prompt processing and generation speed, as llama-bench does.",
        discussion: """
            pp<N> evaluates N prompt tokens in one batched pass; tg<N> generates N tokens one \
            decode step at a time; sv<N> (with --verify) evaluates N tokens in one pass with \
            logits for every row, as verifying N-1 speculative drafts does, and is compared with \
            N decode steps. All start from an empty cache in a context of -p + -n tokens, \
            evaluate random token ids (timings exclude tokenisation and sampling) and run once \
            for warm-up before the timed repetitions. Prints t/s (mean ± standard deviation, and \
            the median), the decode roofline (weight bytes per token over the memory bandwidth, \
            measured here) and peak memory.
            """
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sparsityOptions: SparsityOptions

    // Unconditional parsing lets "-p -1" reach validate() and its message.
    @Option(name: [.customShort("p"), .customLong("n-prompt")], parsing: .unconditional, help: "Prompt tokens of the pp test (0: skip it).")
    var promptTokens = 512

    @Option(name: [.customShort("n"), .customLong("n-gen")], parsing: .unconditional, help: "Generated tokens of the tg test (0: skip it).")
    var generatedTokens = 128

    @Option(name: [.customShort("r"), .customLong("repetitions")], parsing: .unconditional, help: "Timed runs of each test.")
    var repetitions = 5

    @Option(help: "Tokens per speculative verification pass to measure, e.g. 2,5,9 (drafts + 1).")
    var verify: String?

    @Flag(help: "Print llama-bench's JSON records instead of the markdown table.")
    var json = false

    func validate() throws {
        if promptTokens < 0 { throw ValidationError("--n-prompt must be 0 or more") }
        if generatedTokens < 0 { throw ValidationError("--n-gen must be 0 or more") }
        if promptTokens == 0 && generatedTokens == 0 { throw ValidationError("nothing to measure: --n-prompt and --n-gen are both 0") }
        if try verifyTokens().contains(where: { $0 < 1 }) { throw ValidationError("--verify takes token counts of at least 1") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if modelOptions.contextSize != nil {
            throw ValidationError("bench sizes the context itself (--n-prompt + --n-gen, as llama-bench); drop --ctx-size")
        }
    }

    private func verifyTokens() throws -> [Int] {
        try verify.map { try NeedleOptions.parse($0, name: "--verify") } ?? []
    }

    func run() throws {
        let model = try modelOptions.load()
        let verifications = try verifyTokens()
        let contextSize = max(promptTokens + generatedTokens, verifications.max() ?? 0)
        guard contextSize <= model.config.trainedContextLength else {
            throw CLIError("--n-prompt + --n-gen = \(contextSize) exceeds the model's context length \(model.config.trainedContextLength)")
        }
        let pool = modelOptions.pool()
        var tests: [BenchmarkTest] = []
        if promptTokens > 0 { tests.append(BenchmarkTest(.promptProcessing, tokens: promptTokens)) }
        if generatedTokens > 0 { tests.append(BenchmarkTest(.textGeneration, tokens: generatedTokens)) }
        tests += verifications.map { BenchmarkTest(.verification, tokens: $0) }
        let benchmark = Benchmark(model: model, contextSize: contextSize, pool: pool)
        benchmark.session.decodeFeedForward = try sparsityOptions.method(for: model, pool: pool)
        let report = try benchmark.run(tests, repetitions: repetitions)
        print(json ? try report.jsonString() : report.markdown())
    }
}
