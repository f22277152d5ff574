import Foundation
import SparrowEngine
import SparrowTestSupport
import SparrowKernels
import Testing

@Suite struct SampleStatisticsTests {
    @Test func meanSampleStandardDeviationAndMedian() {
        let s = SampleStatistics([2, 4, 4, 4, 5, 5, 7, 9])
        #expect(s.count == 8)
        #expect(s.mean == 5)
        // Sum of squared deviations 32 over n - 1 = 7 (llama-bench's sample deviation).
        #expect(abs(s.standardDeviation - (32.0 / 7).squareRoot()) < 1e-12)
        #expect(s.median == 4.5)
    }

    @Test func oddCountMedianIsTheMiddleSampleWhateverTheOrder() {
        let s = SampleStatistics([9, 1, 5])
        #expect(s.median == 5)
        #expect(s.mean == 5)
        #expect(s.standardDeviation == 4)
    }

    @Test func oneSampleHasNoDeviationAndNoneGiveZeros() {
        #expect(SampleStatistics([3.5]) == SampleStatistics([3.5]))
        #expect(SampleStatistics([3.5]).standardDeviation == 0)
        #expect(SampleStatistics([3.5]).median == 3.5)
        let empty = SampleStatistics([])
        #expect(empty.count == 0 && empty.mean == 0 && empty.standardDeviation == 0 && empty.median == 0)
    }

    @Test func largeCloseSamplesKeepTheirSmallDeviation() {
        let s = SampleStatistics([1e9 + 1, 1e9 + 2, 1e9 + 3])
        #expect(abs(s.standardDeviation - 1) < 1e-6)
    }
}

@Suite struct BenchmarkArithmeticTests {
    @Test func tokensPerSecondComeFromEachSample() {
        let m = BenchmarkMeasurement(test: BenchmarkTest(.textGeneration, tokens: 128),
                                     samplesNanoseconds: [1_000_000_000, 500_000_000], startTime: Date())
        #expect(m.test.name == "tg128" && m.test.promptTokens == 0 && m.test.generatedTokens == 128)
        #expect(m.samplesTokensPerSecond == [128, 256])
        #expect(m.tokensPerSecond.mean == 192)
        #expect(m.nanoseconds.mean == 750_000_000)
        #expect(BenchmarkTest(.promptProcessing, tokens: 512).name == "pp512")
    }

    @Test func rooflineCeilingIsBandwidthOverBytes() {
        let r = Roofline(weightBytesPerToken: 100_000_000, bandwidthBytesPerSecond: 40e9)
        #expect(r.ceilingTokensPerSecond == 400)
        #expect(r.fractionOfCeiling(100) == 0.25)
        #expect(Roofline(weightBytesPerToken: 0, bandwidthBytesPerSecond: 40e9).ceilingTokensPerSecond == 0)
    }
}

/// One real run on SmolLM2 with tiny tests, shared by the tests below (about a second).
@Suite(.serialized) struct BenchmarkRunTests {
    static let promptTokens = 8, generatedTokens = 4, verifiedTokens = 3, repetitions = 2
    static let run = Result { () throws -> (LanguageModel, BenchmarkReport) in
        let model = try catalogModel("smollm2-135m")
        let bench = Benchmark(model: model, contextSize: promptTokens + generatedTokens, pool: ThreadPool(threadCount: 2))
        // A small bandwidth buffer keeps the test quick; it checks the roofline's consistency, not its value.
        let report = try bench.run([BenchmarkTest(.promptProcessing, tokens: promptTokens),
                                    BenchmarkTest(.textGeneration, tokens: generatedTokens),
                                    BenchmarkTest(.verification, tokens: verifiedTokens)],
                                   repetitions: repetitions, bandwidthBufferBytes: 64 << 20)
        return (model, report)
    }

    @Test func reportsTimingsRooflineAndMemory() throws {
        let (model, report) = try Self.run.get()
        #expect(report.measurements.map(\.test.name) == ["pp8", "tg4", "sv3"])
        for m in report.measurements {
            #expect(m.samplesNanoseconds.count == Self.repetitions)
            #expect(m.samplesNanoseconds.allSatisfy { $0 > 0 })
            #expect(m.tokensPerSecond.median > 0)
        }
        // Every weight matrix once (the output matrix is SmolLM2's tied embedding table) plus one
        // embedding row: between the output matrix alone and all tensor bytes.
        let roofline = report.roofline
        let c = model.config
        #expect(roofline.weightBytesPerToken == model.transformer.weightBytesPerToken)
        #expect(roofline.weightBytesPerToken > report.tensorTypes["q8_0"]!.bytes)
        #expect(roofline.weightBytesPerToken <= report.modelBytes)
        #expect(roofline.bandwidthBytesPerSecond > 1e9 && roofline.bandwidthBytesPerSecond < 1e13)
        let tg = report.measurements[1]
        let fraction = try #require(report.generationFractionOfCeiling)
        #expect(abs(fraction - tg.tokensPerSecond.median / roofline.ceilingTokensPerSecond) < 1e-12)
        // The weights (92 MiB) do not fit in cache, so decoding cannot beat streaming them.
        #expect(fraction > 0 && fraction < 1)

        #expect(report.keyValueCacheBytes == 2 * c.layerCount * (Self.promptTokens + Self.generatedTokens) * c.kvDim * 4)
        #expect(report.peakResidentBytes > report.modelBytes / 2)
        #expect(report.modelFileBytes == model.file.fileSize)
        #expect(report.parameterCount == 134_515_008)
        #expect(report.modelType == "llama 135M Q4_1")
        #expect(report.tensorTypes.mapValues(\.count) == ["f32": 61, "q4_1": 210, "q8_0": 1])
        #expect(report.tensorTypes.values.reduce(0) { $0 + $1.bytes } == report.modelBytes)

        let table = report.markdown()
        #expect(table.hasPrefix("| model "))
        #expect(table.contains("| llama 135M Q4_1 "))
        #expect(table.contains(" pp8 |") && table.contains(" tg4 |"))
        #expect(table.contains("tg roofline:") && table.contains("peak RSS"))
        // The verification pass against three decode steps: the ratio of the medians.
        let sv = report.measurements[2]
        let ratio = sv.nanoseconds.median / (tg.nanoseconds.median / 4 * 3)
        #expect(table.contains("sv3: one pass over 3 tokens costs \(String(format: "%.2f", ratio))x of 3 tg4 decode steps"))
    }

    @Test func jsonRecordsUseLlamaBenchFieldNames() throws {
        let (_, report) = try Self.run.get()
        let json = try report.jsonString()
        let records = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(records.count == 3)
        let llamaBenchFields: Set = [
            "cpu_info", "model_filename", "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch",
            "n_threads", "type_k", "type_v", "use_mmap", "n_prompt", "n_gen", "test_time",
            "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
        ]
        let sparrowFields: Set = [
            "median_ts", "cpu_features", "tensor_types", "model_file_size", "bandwidth_gbs",
            "weight_bytes_per_token", "tg_ceiling_ts", "peak_rss_bytes", "kv_cache_bytes",
        ]
        let (pp, tg) = (records[0], records[1])
        #expect(Set(pp.keys) == llamaBenchFields.union(sparrowFields))
        #expect(Set(tg.keys) == llamaBenchFields.union(sparrowFields).union(["tg_fraction_of_ceiling"]))
        #expect(pp["n_prompt"] as? Int == 8 && pp["n_gen"] as? Int == 0)
        #expect(tg["n_prompt"] as? Int == 0 && tg["n_gen"] as? Int == 4)
        #expect(records[2]["n_prompt"] as? Int == 3 && records[2]["n_gen"] as? Int == 0)
        #expect(tg["n_threads"] as? Int == 2)
        #expect((tg["tensor_types"] as? [String: Any])?["q4_1"] != nil)

        for record in records {
            let ns = try #require(record["samples_ns"] as? [Int])
            let ts = try #require(record["samples_ts"] as? [Double])
            let tokens = (record["n_prompt"] as! Int) + (record["n_gen"] as! Int)
            #expect(ns.count == 2 && ts.count == 2)
            for (n, t) in zip(ns, ts) { #expect(abs(t - 1e9 * Double(tokens) / Double(n)) < 1e-9 * t) }
            let avgNs = try #require(record["avg_ns"] as? Int)
            #expect(abs(avgNs - (ns[0] + ns[1]) / 2) <= 1)
            let avgTs = try #require(record["avg_ts"] as? Double)
            #expect(abs(avgTs - (ts[0] + ts[1]) / 2) < 1e-9 * avgTs)
        }
        let ceiling = try #require(tg["tg_ceiling_ts"] as? Double)
        let bandwidth = try #require(tg["bandwidth_gbs"] as? Double)
        let bytes = try #require(tg["weight_bytes_per_token"] as? Int)
        #expect(abs(ceiling - bandwidth * 1e9 / Double(bytes)) < 1e-9 * ceiling)
        let fraction = try #require(tg["tg_fraction_of_ceiling"] as? Double)
        let median = try #require(tg["median_ts"] as? Double)
        #expect(abs(fraction - median / ceiling) < 1e-12)
    }

    @Test func refusesBadRepetitionsAndTestsLongerThanTheContext() throws {
        let bench = Benchmark(model: try catalogModel("smollm2-135m"), contextSize: 8, pool: ThreadPool(threadCount: 1))
        #expect(throws: EvaluationError.self) { try bench.measure(BenchmarkTest(.promptProcessing, tokens: 4), repetitions: 0) }
        #expect(throws: EvaluationError.self) { try bench.measure(BenchmarkTest(.textGeneration, tokens: 9), repetitions: 1) }
        #expect(throws: EvaluationError.self) { try bench.measure(BenchmarkTest(.promptProcessing, tokens: 0), repetitions: 1) }
    }
}
