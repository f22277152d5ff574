import Foundation
import SparrowTestSupport
import Testing
@testable import SparrowKernels

@Suite struct FloatGEMMTests {
    /// op(A)·op(B) (+ C) in Double with a plain triple loop.
    static func reference(m: Int, n: Int, k: Int, a: [Float], transposeA: Bool, b: [Float], transposeB: Bool,
                          c: [Float], accumulate: Bool) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = accumulate ? Double(c[i * n + j]) : 0
                for p in 0..<k {
                    let x = transposeA ? a[p * m + i] : a[i * k + p]
                    let y = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += Double(x) * Double(y)
                }
                out[i * n + j] = sum
            }
        }
        return out
    }

    static func check(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, accumulate: Bool, threads: Int) {
        var rng = SplitMix64(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        let start = (0..<(m * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        let expected = reference(m: m, n: n, k: k, a: a, transposeA: transposeA, b: b, transposeB: transposeB,
                                 c: start, accumulate: accumulate)
        var c = start
        let pool = ThreadPool(threadCount: threads)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    FloatGEMM.multiply(m: m, n: n, k: k, a: a.baseAddress!, transposeA: transposeA,
                                       b: b.baseAddress!, transposeB: transposeB,
                                       into: c.baseAddress!, accumulate: accumulate, pool: pool)
                }
            }
        }
        // f32 sums of k products of magnitude <= 1: error grows like sqrt(k) ulps at worst k.
        let bound = 1e-6 * Double(k) + 1e-6
        var worst = 0.0
        for i in 0..<(m * n) { worst = max(worst, abs(Double(c[i]) - expected[i])) }
        #expect(worst <= bound, "\(m)×\(k)×\(n) tA=\(transposeA) tB=\(transposeB) acc=\(accumulate) threads=\(threads): error \(worst)")
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func oddSizesMatchDoubleReference(_ transposes: (Bool, Bool)) {
        let (tA, tB) = transposes
        // Sizes off the 12×32 tile and the 256-deep k block, and one k past a block boundary.
        // m under 12 takes the few-rows path.
        for (m, n, k) in [(37, 53, 19), (1, 1, 1), (13, 33, 257), (25, 70, 300), (12, 32, 256), (1, 37, 70), (3, 53, 19), (11, 40, 300)] {
            for accumulate in [false, true] {
                Self.check(m: m, n: n, k: k, transposeA: tA, transposeB: tB, accumulate: accumulate, threads: 1)
            }
        }
        // Large enough to be split over two workers, by rows and by columns.
        Self.check(m: 131, n: 45, k: 517, transposeA: tA, transposeB: tB, accumulate: true, threads: 2)
        Self.check(m: 29, n: 601, k: 141, transposeA: tA, transposeB: tB, accumulate: false, threads: 2)
        Self.check(m: 2, n: 601, k: 141, transposeA: tA, transposeB: tB, accumulate: true, threads: 2)
    }

    /// Workers take whole tiles and every element sums its k products in the same order, so
    /// the pool's size does not change a bit of the result.
    @Test func sameBitsOnAnyPoolSize() {
        var rng = SplitMix64(seed: 8)
        for (m, n, k) in [(300, 70, 600), (50, 700, 300)] {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            let results = [1, 2, 3].map { threads in
                var c = [Float](repeating: 0, count: m * n)
                c.withUnsafeMutableBufferPointer {
                    FloatGEMM.multiply(m: m, n: n, k: k, a: a, transposeA: true, b: b, into: $0.baseAddress!, pool: ThreadPool(threadCount: threads))
                }
                return c
            }
            #expect(results[0] == results[1] && results[0] == results[2], "\(m)×\(k)×\(n)")
        }
    }

    @Test func emptyDepthClearsOrKeeps() {
        let pool = ThreadPool(threadCount: 1)
        var c: [Float] = [1, 2, 3, 4]
        let x: [Float] = [0]
        c.withUnsafeMutableBufferPointer { FloatGEMM.multiply(m: 2, n: 2, k: 0, a: x, b: x, into: $0.baseAddress!, accumulate: true, pool: pool) }
        #expect(c == [1, 2, 3, 4])
        c.withUnsafeMutableBufferPointer { FloatGEMM.multiply(m: 2, n: 2, k: 0, a: x, b: x, into: $0.baseAddress!, pool: pool) }
        #expect(c == [0, 0, 0, 0])
    }
}

/// Opt-in throughput measurement (never fails on speed):
/// SPARROW_BENCH=1 swift test -c release --filter FloatGEMMBenchmark
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SPARROW_BENCH"] != nil))
struct FloatGEMMBenchmark {
    /// The predictor trainer's products for a batch of 1024 rows, inputs 896, rank 128, outputs 4864 (m×k×n).
    @Test(arguments: [
        (1024, 896, 128, false, true),    // hidden = x · downᵀ
        (1024, 128, 4864, false, true),   // logits = hidden · upᵀ
        (4864, 1024, 128, true, false),   // up gradient = gradᵀ · hidden
        (1024, 4864, 128, false, false),  // hidden gradient = grad · up
        (128, 1024, 896, true, false),    // down gradient = hidden gradᵀ · x
        (1, 896, 128, false, true),       // one token's hidden
        (1, 128, 4864, false, true),      // one token's logits
    ])
    func report(_ shape: (Int, Int, Int, Bool, Bool)) {
        let (m, k, n, tA, tB) = shape
        let threads = Int(ProcessInfo.processInfo.environment["SPARROW_BENCH_THREADS"] ?? "") ?? 2
        let pool = ThreadPool(threadCount: threads)
        var rng = SplitMix64(seed: 3)
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        var c = [Float](repeating: 0, count: m * n)
        func once() {
            c.withUnsafeMutableBufferPointer { FloatGEMM.multiply(m: m, n: n, k: k, a: a, transposeA: tA, b: b, transposeB: tB, into: $0.baseAddress!, pool: pool) }
        }
        once()
        // The best of many runs: the machine is shared, and interference only ever adds time.
        var best = Double.infinity, total = 0.0
        let repeats = 30
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            once()
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = min(best, seconds)
            total += seconds
        }
        // Spot-check the timed result against Double sums.
        for _ in 0..<16 {
            let i = Int.random(in: 0..<m, using: &rng), j = Int.random(in: 0..<n, using: &rng)
            var exact = 0.0
            for p in 0..<k { exact += Double(tA ? a[p * m + i] : a[i * k + p]) * Double(tB ? b[j * k + p] : b[p * n + j]) }
            #expect(abs(Double(c[i * n + j]) - exact) < 1e-4 * Double(k))
        }
        let flops = 2 * Double(m) * Double(n) * Double(k)
        print(String(format: "FloatGEMM %5d×%4d×%4d %@%@ %2d threads: best %7.3f ms %6.1f GFLOP/s, mean %6.1f GFLOP/s",
                     m, k, n, tA ? "Aᵀ" : "A ", tB ? "Bᵀ" : "B ", threads, best * 1e3, flops / best / 1e9, flops / (total / Double(repeats)) / 1e9))
    }
}
