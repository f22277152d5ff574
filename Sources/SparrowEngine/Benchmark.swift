import Foundation
import SparrowKernels

/// One of llama-bench's tests.
public struct BenchmarkTest: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Prompt processing: all tokens in one batched forward pass (chunks of the batch size).
        case promptProcessing = "pp"
        /// Text generation: one decode step per token.
        case textGeneration = "tg"
        /// Speculative verification: one pass over all tokens with logits for every row, as
        /// checking N-1 drafted tokens after the last accepted one takes.
        case verification = "sv"
    }

    public let kind: Kind
    public let tokens: Int

    public init(_ kind: Kind, tokens: Int) {
        self.kind = kind
        self.tokens = tokens
    }

    /// llama-bench's name, e.g. "pp512" or "tg128".
    public var name: String { "\(kind.rawValue)\(tokens)" }
    /// llama-bench's `n_prompt` and `n_gen` of the test.
    public var promptTokens: Int { kind == .textGeneration ? 0 : tokens }
    public var generatedTokens: Int { kind == .textGeneration ? tokens : 0 }
}

/// The timed repetitions of one test (the warm-up run excluded).
public struct BenchmarkMeasurement: Sendable {
    public let test: BenchmarkTest
    /// Wall-clock nanoseconds of each repetition.
    public let samplesNanoseconds: [UInt64]
    /// When the test started, warm-up included.
    public let startTime: Date

    public init(test: BenchmarkTest, samplesNanoseconds: [UInt64], startTime: Date) {
        self.test = test
        self.samplesNanoseconds = samplesNanoseconds
        self.startTime = startTime
    }

    public var samplesTokensPerSecond: [Double] {
        samplesNanoseconds.map { 1e9 * Double(test.tokens) / Double(max($0, 1)) }
    }
    public var nanoseconds: SampleStatistics { SampleStatistics(samplesNanoseconds.map { Double($0) }) }
    public var tokensPerSecond: SampleStatistics { SampleStatistics(samplesTokensPerSecond) }
}

/// Decoding's memory-bandwidth ceiling: each generated token streams every weight matrix once.
public struct Roofline: Sendable, Equatable {
    public let weightBytesPerToken: Int
    public let bandwidthBytesPerSecond: Double

    public init(weightBytesPerToken: Int, bandwidthBytesPerSecond: Double) {
        self.weightBytesPerToken = weightBytesPerToken
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
    }

    /// The most tokens per second decoding could reach if it only waited for weight reads.
    public var ceilingTokensPerSecond: Double {
        weightBytesPerToken > 0 ? bandwidthBytesPerSecond / Double(weightBytesPerToken) : 0
    }

    /// How much of the ceiling a decode speed reaches (1 is the ceiling).
    public func fractionOfCeiling(_ tokensPerSecond: Double) -> Double {
        ceilingTokensPerSecond > 0 ? tokensPerSecond / ceilingTokensPerSecond : 0
    }
}

/// Runs llama-bench's tests on one model: prompt processing and text generation from an
/// empty cache, over uniformly random token ids (the first one BOS where the model adds one),
/// as llama-bench does; speed does not depend on which tokens are evaluated. Timings cover
/// `Session.evaluate` only: no tokenisation and no sampling (the ids are drawn beforehand).
public final class Benchmark {
    public let model: LanguageModel
    public let session: Session
    /// Tokens per forward pass in prompt processing (llama-bench's default `n_ubatch`).
    public let batchSize: Int
    /// Fixed, so that runs evaluate the same tokens.
    private var random = Xoshiro256(seed: 0x5EED)

    /// `contextSize` should be the tests' `n_prompt + n_gen`, as llama-bench sizes its context.
    public init(model: LanguageModel, contextSize: Int, pool: ThreadPool, batchSize: Int = 512) {
        self.model = model
        self.batchSize = batchSize
        session = Session(model: model.transformer, contextSize: contextSize, pool: pool, batchCapacity: batchSize)
    }

    /// A warm-up run (as llama-bench: the whole prompt for pp, one decode step for tg; both read
    /// every weight page), then `repetitions` timed runs.
    public func measure(_ test: BenchmarkTest, repetitions: Int) throws -> BenchmarkMeasurement {
        guard repetitions >= 1 else {
            throw EvaluationError(description: "a benchmark needs at least one repetition, got \(repetitions)")
        }
        guard test.tokens >= 1, test.tokens <= session.capacity else {
            throw EvaluationError(description: "test \(test.name) needs 1 to \(session.capacity) tokens (the context size)")
        }
        let startTime = Date()
        _ = try time(test.kind == .textGeneration ? BenchmarkTest(.textGeneration, tokens: 1) : test)
        let samples = try (0..<repetitions).map { _ in try time(test) }
        return BenchmarkMeasurement(test: test, samplesNanoseconds: samples, startTime: startTime)
    }

    /// Measures every test, then the machine's memory bandwidth for the decode roofline.
    public func run(_ tests: [BenchmarkTest], repetitions: Int, bandwidthBufferBytes: Int = 256 << 20) throws -> BenchmarkReport {
        let measurements = try tests.map { try measure($0, repetitions: repetitions) }
        // Read before the bandwidth buffer exists, so the peak is the model's.
        let peakResidentBytes = ProcessMemory.peakResidentBytes
        let bandwidth = try MemoryBandwidth.measureRead(pool: session.pool, bytes: bandwidthBufferBytes)
        return BenchmarkReport(
            model: model, measurements: measurements,
            roofline: Roofline(weightBytesPerToken: model.transformer.weightBytesPerToken, bandwidthBytesPerSecond: bandwidth),
            threads: session.pool.threadCount, batchSize: batchSize,
            peakResidentBytes: peakResidentBytes, keyValueCacheBytes: session.cacheBytes
        )
    }

    private func time(_ test: BenchmarkTest) throws -> UInt64 {
        let tokens = randomTokens(test.tokens)
        session.truncate(to: 0)
        let start = DispatchTime.now().uptimeNanoseconds
        switch test.kind {
        case .promptProcessing:
            try session.evaluate(tokens)
        case .textGeneration:
            for token in tokens { try session.evaluate([token]) }
        case .verification:
            try session.evaluate(tokens, logits: .all, order: .singleToken)
        }
        return DispatchTime.now().uptimeNanoseconds - start
    }

    private func randomTokens(_ count: Int) -> [Int] {
        let tokenizer = model.tokenizer
        return (0..<count).map { i in
            if i == 0, tokenizer.addsBOS, let bos = tokenizer.bosToken { return bos }
            return Int.random(in: 0..<tokenizer.vocabularySize, using: &random)
        }
    }
}
