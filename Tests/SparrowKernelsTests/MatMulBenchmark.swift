import Foundation
import SparrowTestSupport
import Testing
@testable import SparrowKernels

/// Shape of Qwen2.5-0.5B ffn_down (896 x 4864; 896 columns are not a whole number of K-quant blocks).
/// Opt-in throughput measurement (never fails on speed): SPARROW_BENCH=1 swift test -c release --filter MatMulBenchmark
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SPARROW_BENCH"] != nil))
struct MatMulBenchmark {
    @Test(arguments: [TensorType.q4_K, .q8_0, .q6_K, .q4_0, .q4_1, .q5_0, .f16])
    func report(_ type: TensorType) throws {
        let rows = 896, cols = 4864, rowBytes = type.byteCount(elements: cols)!
        // 48 distinct matrices (> L3) so decode numbers include DRAM traffic, as in a real model.
        let copies = 48
        var rng = SplitMix64(seed: 7)
        let one = randomEncodedRows(type, rows: rows, cols: cols, using: &rng)
        let weights = UnsafeMutableRawPointer.allocate(byteCount: one.count * copies, alignment: 64)
        defer { weights.deallocate() }
        for c in 0..<copies { one.withUnsafeBytes { (weights + c * one.count).copyMemory(from: $0.baseAddress!, byteCount: one.count) } }
        let matrices = try (0..<copies).map { try WeightMatrix(type: type, rows: rows, cols: cols, data: weights + $0 * one.count) }
        let threads = Int(ProcessInfo.processInfo.environment["SPARROW_BENCH_THREADS"] ?? "") ?? 2
        let matmul = MatMul(pool: ThreadPool(threadCount: threads))
        let maxTokens = 512
        let input = (0..<maxTokens * cols).map { _ in Float.random(in: -1...1, using: &rng) }
        var output = [Float](repeating: 0, count: maxTokens * rows)

        func seconds(_ repeats: Int, tokens: Int, rotate: Bool) -> Double {
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { out in
                    matmul(matrices[0], x.baseAddress!, tokens: tokens, into: out.baseAddress!)  // warm-up
                    let start = ContinuousClock.now
                    for i in 0..<repeats { matmul(matrices[rotate ? i % copies : 0], x.baseAddress!, tokens: tokens, into: out.baseAddress!) }
                    let elapsed = ContinuousClock.now - start
                    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                }
            }
        }
        let bytes = Double(rows * rowBytes)
        let cold = seconds(480, tokens: 1, rotate: true) / 480
        let hot = seconds(480, tokens: 1, rotate: false) / 480
        let gemm = seconds(3, tokens: maxTokens, rotate: false) / 3
        let flops = 2.0 * Double(rows * cols * maxTokens)
        print(String(format: "BENCH %d threads %@ %dx%d (%.2f MB): GEMV %.1f GB/s from DRAM (%.0f us), %.1f GB/s cache-hot (%.0f us); GEMM %d tokens %.1f GFLOP/s",
                     threads, type.name, rows, cols, bytes / 1e6, bytes / cold / 1e9, cold * 1e6, bytes / hot / 1e9, hot * 1e6, maxTokens, flops / gemm / 1e9))
    }
}
