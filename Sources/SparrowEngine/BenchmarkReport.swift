import Foundation
import SparrowGGUF
import SparrowKernels

/// The results of `Benchmark.run`: llama-bench's markdown table or its JSON records, plus the
/// decode roofline and memory.
public struct BenchmarkReport: Sendable {
    public let modelFilename: String
    /// llama.cpp's model description: architecture, size, file type, e.g. "llama 135M Q4_1".
    public let modelType: String
    /// Bytes of all tensors (llama-bench's `model_size`) and their element count.
    public let modelBytes: Int
    public let parameterCount: Int
    public let modelFileBytes: Int
    /// Per GGML type name, how many tensors have it and their bytes.
    public let tensorTypes: [String: TensorTypeUsage]
    public let measurements: [BenchmarkMeasurement]
    public let roofline: Roofline
    public let threads: Int
    public let batchSize: Int
    /// Peak resident memory during the tests, and the session's key/value cache.
    public let peakResidentBytes: Int
    public let keyValueCacheBytes: Int

    public struct TensorTypeUsage: Sendable, Equatable, Encodable {
        public var count = 0
        public var bytes = 0
    }

    public init(model: LanguageModel, measurements: [BenchmarkMeasurement], roofline: Roofline,
                threads: Int, batchSize: Int, peakResidentBytes: Int, keyValueCacheBytes: Int) {
        let file = model.file
        modelFilename = file.path
        modelBytes = file.tensors.reduce(0) { $0 + $1.byteCount }
        parameterCount = file.tensors.reduce(0) { $0 + $1.elementCount }
        modelFileBytes = file.fileSize
        var types: [String: TensorTypeUsage] = [:]
        for tensor in file.tensors {
            types[tensor.type.name, default: TensorTypeUsage()].count += 1
            types[tensor.type.name, default: TensorTypeUsage()].bytes += tensor.byteCount
        }
        tensorTypes = types
        modelType = "\(model.config.architecture.rawValue) \(Self.sizeLabel(parameterCount)) \(Self.fileTypeName(file))"
        self.measurements = measurements
        self.roofline = roofline
        self.threads = threads
        self.batchSize = batchSize
        self.peakResidentBytes = peakResidentBytes
        self.keyValueCacheBytes = keyValueCacheBytes
    }

    /// The memory budget: the GGUF file and the key/value cache, plus 15%.
    public var residentTargetBytes: Int { (modelFileBytes + keyValueCacheBytes) * 115 / 100 }

    /// The median generation speed over the ceiling, for the first tg test; nil without one.
    public var generationFractionOfCeiling: Double? {
        measurements.first { $0.test.kind == .textGeneration }.map { roofline.fractionOfCeiling($0.tokensPerSecond.median) }
    }

    /// llama-bench's JSON output (a list of one record per test, its field names), with Sparrow's
    /// additions: `median_ts`, `cpu_features`, `tensor_types`, the roofline and memory.
    public func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(measurements.map(record)), as: UTF8.self)
    }

    /// llama-bench's markdown table with a median column, then the roofline and memory lines.
    public func markdown() -> String {
        let columns: [(title: String, width: Int)] = [
            ("model", -30), ("size", 10), ("params", 10), ("backend", -10), ("threads", 7),
            ("test", 15), ("t/s", 20), ("median t/s", 10),
        ]
        func row(_ cells: [String]) -> String {
            "| " + zip(cells, columns).map { cell, column in pad(cell, column.width) }.joined(separator: " | ") + " |"
        }
        var lines = [row(columns.map(\.title))]
        lines.append("| " + columns.map { String(repeating: "-", count: abs($0.width) - 1) + ($0.width > 0 ? ":" : "-") }
            .joined(separator: " | ") + " |")
        for m in measurements {
            let ts = m.tokensPerSecond
            lines.append(row([
                modelType, mebibytes(modelBytes), Self.parameterLabel(parameterCount), "CPU", "\(threads)",
                m.test.name, format("%.2f ± %.2f", ts.mean, ts.standardDeviation), format("%.2f", ts.median),
            ]))
        }
        lines.append("")
        var roofLine = "tg roofline: \(mebibytes(roofline.weightBytesPerToken)) of weights read per token at "
            + format("%.1f GB/s", roofline.bandwidthBytesPerSecond / 1e9) + " (measured, \(threads) threads): ceiling "
            + format("%.1f t/s", roofline.ceilingTokensPerSecond)
        if let tg = measurements.first(where: { $0.test.kind == .textGeneration }), let fraction = generationFractionOfCeiling {
            roofLine += "; \(tg.test.name) median " + format("%.1f t/s = %.1f%%", tg.tokensPerSecond.median, fraction * 100) + " of it"
        }
        lines.append(roofLine)
        if let tg = measurements.first(where: { $0.test.kind == .textGeneration }) {
            let step = tg.nanoseconds.median / Double(tg.test.tokens)
            for sv in measurements where sv.test.kind == .verification {
                let steps = step * Double(sv.test.tokens)
                lines.append("\(sv.test.name): one pass over \(sv.test.tokens) tokens costs " + format("%.2f", sv.nanoseconds.median / steps)
                    + "x of \(sv.test.tokens) \(tg.test.name) decode steps (medians " + format("%.1f ms vs %.1f ms", sv.nanoseconds.median / 1e6, steps / 1e6) + ")")
            }
        }
        lines.append("memory: peak RSS \(mebibytes(peakResidentBytes)); target (GGUF file \(mebibytes(modelFileBytes)) + KV cache "
            + "\(mebibytes(keyValueCacheBytes))) + 15% = \(mebibytes(residentTargetBytes))"
            + (peakResidentBytes <= residentTargetBytes ? " (met)" : " (exceeded)"))
        lines.append("cpu: \(HostCPU.name); kernels: " + (HostCPU.kernelFeatures.isEmpty ? "portable SIMD" : HostCPU.kernelFeatures.joined(separator: ", ")))
        return lines.joined(separator: "\n")
    }

    /// One test's JSON record.
    struct Record: Encodable {
        let cpuInfo: String
        let cpuFeatures: [String]
        let modelFilename: String
        let modelType: String
        let modelSize: Int
        let modelNParams: Int
        let modelFileSize: Int
        let tensorTypes: [String: TensorTypeUsage]
        let nBatch: Int
        let nUbatch: Int
        let nThreads: Int
        let typeK: String
        let typeV: String
        let useMmap: Bool
        let nPrompt: Int
        let nGen: Int
        let testTime: String
        let avgNs: UInt64
        let stddevNs: UInt64
        let avgTs: Double
        let stddevTs: Double
        let medianTs: Double
        let samplesNs: [UInt64]
        let samplesTs: [Double]
        let bandwidthGbs: Double
        let weightBytesPerToken: Int
        let tgCeilingTs: Double
        /// Only in tg records: this test's median t/s over the ceiling.
        let tgFractionOfCeiling: Double?
        let peakRssBytes: Int
        let kvCacheBytes: Int

        // Spelled out so tensor type names ("q4_K") are never case-converted.
        enum CodingKeys: String, CodingKey {
            case cpuInfo = "cpu_info", cpuFeatures = "cpu_features"
            case modelFilename = "model_filename", modelType = "model_type", modelSize = "model_size"
            case modelNParams = "model_n_params", modelFileSize = "model_file_size", tensorTypes = "tensor_types"
            case nBatch = "n_batch", nUbatch = "n_ubatch", nThreads = "n_threads"
            case typeK = "type_k", typeV = "type_v", useMmap = "use_mmap"
            case nPrompt = "n_prompt", nGen = "n_gen", testTime = "test_time"
            case avgNs = "avg_ns", stddevNs = "stddev_ns", avgTs = "avg_ts", stddevTs = "stddev_ts", medianTs = "median_ts"
            case samplesNs = "samples_ns", samplesTs = "samples_ts"
            case bandwidthGbs = "bandwidth_gbs", weightBytesPerToken = "weight_bytes_per_token"
            case tgCeilingTs = "tg_ceiling_ts", tgFractionOfCeiling = "tg_fraction_of_ceiling"
            case peakRssBytes = "peak_rss_bytes", kvCacheBytes = "kv_cache_bytes"
        }
    }

    func record(_ m: BenchmarkMeasurement) -> Record {
        let ns = m.nanoseconds, ts = m.tokensPerSecond
        return Record(
            cpuInfo: HostCPU.name, cpuFeatures: HostCPU.kernelFeatures,
            modelFilename: modelFilename, modelType: modelType, modelSize: modelBytes, modelNParams: parameterCount,
            modelFileSize: modelFileBytes, tensorTypes: tensorTypes,
            nBatch: batchSize, nUbatch: batchSize, nThreads: threads, typeK: "f32", typeV: "f32", useMmap: true,
            nPrompt: m.test.promptTokens, nGen: m.test.generatedTokens,
            testTime: m.startTime.formatted(.iso8601),
            avgNs: UInt64(ns.mean.rounded()), stddevNs: UInt64(ns.standardDeviation.rounded()),
            avgTs: ts.mean, stddevTs: ts.standardDeviation, medianTs: ts.median,
            samplesNs: m.samplesNanoseconds, samplesTs: m.samplesTokensPerSecond,
            bandwidthGbs: roofline.bandwidthBytesPerSecond / 1e9, weightBytesPerToken: roofline.weightBytesPerToken,
            tgCeilingTs: roofline.ceilingTokensPerSecond,
            tgFractionOfCeiling: m.test.kind == .textGeneration ? roofline.fractionOfCeiling(ts.median) : nil,
            peakRssBytes: peakResidentBytes, kvCacheBytes: keyValueCacheBytes
        )
    }

    /// "135M" or "1.5B", from the parameter count.
    static func sizeLabel(_ parameters: Int) -> String {
        parameters < 1_000_000_000 ? "\(Int((Double(parameters) / 1e6).rounded()))M" : format("%.1fB", Double(parameters) / 1e9)
    }

    /// llama-bench's params column: "134.52 M" or "1.54 B".
    static func parameterLabel(_ parameters: Int) -> String {
        parameters < 1_000_000_000 ? format("%.2f M", Double(parameters) / 1e6) : format("%.2f B", Double(parameters) / 1e9)
    }

    /// llama.cpp's name for the file's `general.file_type` (its ftype), else the type holding
    /// the most bytes.
    static func fileTypeName(_ file: GGUFFile) -> String {
        let names = [
            0: "all F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
            10: "Q2_K - Medium", 11: "Q3_K - Small", 12: "Q3_K - Medium", 13: "Q3_K - Large",
            14: "Q4_K - Small", 15: "Q4_K - Medium", 16: "Q5_K - Small", 17: "Q5_K - Medium", 18: "Q6_K", 32: "BF16",
        ]
        if let id = file.int("general.file_type"), let name = names[id] { return name }
        let bytesByType = Dictionary(grouping: file.tensors, by: \.type).mapValues { $0.reduce(0) { $0 + $1.byteCount } }
        return bytesByType.max { $0.value < $1.value }?.key.name.uppercased() ?? "unknown"
    }
}

private func format(_ pattern: String, _ values: CVarArg...) -> String { String(format: pattern, arguments: values) }

private func mebibytes(_ bytes: Int) -> String { format("%.2f MiB", Double(bytes) / 1_048_576) }

/// Right-aligned for a positive width, left-aligned for a negative one (printf's convention);
/// counts characters, so "±" takes one column.
private func pad(_ text: String, _ width: Int) -> String {
    let fill = String(repeating: " ", count: max(0, abs(width) - text.count))
    return width > 0 ? fill + text : text + fill
}
