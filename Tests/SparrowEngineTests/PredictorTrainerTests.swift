import Foundation
@testable import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

@Suite struct PredictorTrainerTests {
    /// Rows x ~ N(0, 1)^64 labelled by a hidden rank-8 affine map to 256 outputs:
    /// label = (W·x + c > 0), W = U·V of rank 8, c = -0.84·|W_j| so each output is positive for
    /// about 20% of rows. A rank-8 logistic model represents these labels exactly (up to scale).
    struct Synthetic {
        static let inputSize = 64, outputSize = 256, hiddenRank = 8
        let rows: Int
        var inputs: [Float] = [], labels: [UInt8] = []
        /// W·x + c per row: the true scores, whose top-K is the best possible selection.
        var scores: [Float] = []

        init(rows: Int, seed: UInt64) {
            self.rows = rows
            let d = Self.inputSize, f = Self.outputSize, h = Self.hiddenRank
            var rng = SplitMix64(seed: seed)
            func normal() -> Float {
                // Box-Muller from two uniforms in (0, 1].
                let u = Float((rng.next() >> 40) + 1) * 0x1p-24, v = Float(rng.next() >> 40) * 0x1p-24
                return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
            }
            let u = (0..<(f * h)).map { _ in normal() }
            let v = (0..<(h * d)).map { _ in normal() / Float(d).squareRoot() }
            var w = [Float](repeating: 0, count: f * d)
            for j in 0..<f { for p in 0..<h { for i in 0..<d { w[j * d + i] += u[j * h + p] * v[p * d + i] } } }
            let c = (0..<f).map { j in -0.84 * (0..<d).reduce(Float(0)) { $0 + w[j * d + $1] * w[j * d + $1] }.squareRoot() }
            inputs = (0..<(rows * d)).map { _ in normal() }
            scores = [Float](repeating: 0, count: rows * f)
            labels = [UInt8](repeating: 0, count: rows * f)
            for r in 0..<rows {
                for j in 0..<f {
                    var z = c[j]
                    for i in 0..<d { z += w[j * d + i] * inputs[r * d + i] }
                    scores[r * f + j] = z
                    labels[r * f + j] = z > 0 ? 1 : 0
                }
            }
        }

        func train(topK: Int, options: PredictorTrainer.Options, threads: Int = 2) throws -> PredictorTrainer.Result {
            try inputs.withUnsafeBufferPointer { x in
                try labels.withUnsafeBufferPointer { y in
                    try PredictorTrainer.train(inputs: x, labels: y, rows: rows, inputSize: Self.inputSize, outputSize: Self.outputSize,
                                               topK: topK, options: options, pool: ThreadPool(threadCount: threads))
                }
            }
        }
    }

    /// A budget of 96 of 256 outputs: the 99th-percentile row has about 86 positives (mean 51),
    /// so the true scores' top 96 hold virtually all positives and 0.95 is a fair bar.
    static let topK = 96
    static let options = PredictorTrainer.Options(rank: 16, epochs: 20, batchSize: 256, learningRate: 3e-3, targetRecall: 0.995)

    @Test func learnsALowRankRuleToHighHeldOutRecall() throws {
        let data = Synthetic(rows: 6000, seed: 11)
        // The bar is reachable: the true scores recall (nearly) all held-out positives at this K.
        let heldOut = 600, first = (data.rows - heldOut) * Synthetic.outputSize
        let oracle = Array(data.scores[first...]).withUnsafeBufferPointer { z in
            Array(data.labels[first...]).withUnsafeBufferPointer { y in
                PredictorTrainer.selectedPositives(logits: z.baseAddress!, labels: y.baseAddress!, rows: heldOut,
                                                   outputSize: Synthetic.outputSize, topK: Self.topK, pool: ThreadPool(threadCount: 1))
            }
        }
        let positives = data.labels[first...].reduce(0) { $0 + Int($1) }
        #expect(Double(oracle) / Double(positives) > 0.999)

        let result = try data.train(topK: Self.topK, options: Self.options)
        print("synthetic predictor: held-out recall@\(Self.topK) \(result.heldOutRecall) at epoch \(result.bestEpoch); by epoch \(result.recallByEpoch)")
        #expect(result.heldOutRecall >= 0.95)
        #expect(result.heldOutRecall > result.recallByEpoch[0], "training past the first epoch helps")
        #expect(result.recallByEpoch[result.bestEpoch - 1] == result.heldOutRecall)
        #expect(result.recallByEpoch.max() == result.heldOutRecall)
        // The returned predictor is the checkpoint: recomputing its recall gives the same figure.
        let logits = result.predictor.logitsArray(data.inputs, rows: data.rows)
        let again = Array(logits[first...]).withUnsafeBufferPointer { z in
            Array(data.labels[first...]).withUnsafeBufferPointer { y in
                PredictorTrainer.selectedPositives(logits: z.baseAddress!, labels: y.baseAddress!, rows: heldOut,
                                                   outputSize: Synthetic.outputSize, topK: Self.topK, pool: ThreadPool(threadCount: 1))
            }
        }
        #expect(Double(again) / Double(positives) == result.heldOutRecall)
    }

    @Test func sameSeedSameResultOnAnyPoolSize() throws {
        let data = Synthetic(rows: 1500, seed: 5)
        var options = Self.options
        options.epochs = 3
        let a = try data.train(topK: Self.topK, options: options, threads: 2)
        let b = try data.train(topK: Self.topK, options: options, threads: 2)
        let single = try data.train(topK: Self.topK, options: options, threads: 1)
        for other in [b, single] {
            #expect(a.recallByEpoch == other.recallByEpoch)
            #expect(a.predictor.down == other.predictor.down && a.predictor.up == other.predictor.up && a.predictor.bias == other.predictor.bias)
        }
        options.seed = 2
        let reseeded = try data.train(topK: Self.topK, options: options)
        #expect(reseeded.predictor.down != a.predictor.down)
    }

    @Test func badArgumentsThrow() {
        let data = Synthetic(rows: 40, seed: 3)
        func attempt(rows: Int? = nil, inputCount: Int? = nil, labels: [UInt8]? = nil, topK: Int = 8,
                     options: PredictorTrainer.Options = .init()) -> String? {
            let rows = rows ?? data.rows, labels = labels ?? data.labels
            do {
                _ = try data.inputs.withUnsafeBufferPointer { x in
                    try labels.withUnsafeBufferPointer { y in
                        try PredictorTrainer.train(inputs: UnsafeBufferPointer(rebasing: x[0..<(inputCount ?? x.count)]), labels: y, rows: rows,
                                                   inputSize: Synthetic.inputSize, outputSize: Synthetic.outputSize, topK: topK,
                                                   options: options, pool: ThreadPool(threadCount: 1))
                    }
                }
                return nil
            } catch {
                return (error as? PredictorTrainingError)?.description ?? "unexpected \(error)"
            }
        }
        var quick = PredictorTrainer.Options()
        quick.epochs = 1
        #expect(attempt(options: quick) == nil, "the valid baseline trains")
        #expect(attempt(topK: 0)?.contains("top-K 0") == true)
        #expect(attempt(topK: 257)?.contains("top-K 257") == true)
        #expect(attempt(inputCount: data.inputs.count - 1)?.contains("input floats") == true)
        #expect(attempt(rows: 39)?.contains("input floats") == true)
        #expect(attempt(labels: Array(data.labels.dropLast()))?.contains("labels are not") == true)
        var rankZero = quick
        rankZero.rank = 0
        #expect(attempt(options: rankZero)?.contains("rank 0") == true)
        var tinySplit = quick
        tinySplit.heldOutFraction = 0.01  // 0.4 of a row rounds to none held out
        #expect(attempt(options: tinySplit)?.contains("too few") == true)
        var twos = data.labels
        twos[5] = 2
        #expect(attempt(labels: twos)?.contains("0 or 1") == true)
        #expect(attempt(labels: [UInt8](repeating: 0, count: data.labels.count))?.contains("both classes") == true)
    }

    /// The loss gradients against central differences of the loss computed in Double.
    @Test func gradientsMatchFiniteDifferences() {
        let d = 5, r = 3, f = 7, n = 4
        var rng = SplitMix64(seed: 9)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &rng) } }
        let predictor = LowRankPredictor(inputSize: d, rank: r, outputSize: f, down: values(r * d), up: values(f * r), bias: values(f))
        let inputs = values(n * d)
        let labels = (0..<(n * f)).map { _ in UInt8.random(in: 0...1, using: &rng) }
        let weight: Float = 2.5
        let batch = [2, 0, 3, 1]

        func loss(_ p: LowRankPredictor) -> Double {
            var total = 0.0
            for row in batch {
                for j in 0..<f {
                    var z = Double(p.bias[j])
                    for k in 0..<r {
                        var h = 0.0
                        for i in 0..<d { h += Double(p.down[k * d + i]) * Double(inputs[row * d + i]) }
                        z += Double(p.up[j * r + k]) * h
                    }
                    // -log σ(z) = log(1 + e^-z), -log(1 - σ(z)) = log(1 + e^z)
                    let y = Double(labels[row * f + j])
                    total += y * Double(weight) * log1p(exp(-z)) + (1 - y) * log1p(exp(z))
                }
            }
            return total / Double(n)
        }

        let state = TrainingState(predictor: predictor, batchSize: n)
        defer { state.deallocate() }
        inputs.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { y in
                batch.withUnsafeBufferPointer { b in
                    state.gradients(predictor, batch: b, inputs: x.baseAddress!, labels: y.baseAddress!, positiveWeight: weight,
                                    pool: ThreadPool(threadCount: 2))
                }
            }
        }
        let h: Float = 1e-2
        func check(_ name: String, _ keyPath: WritableKeyPath<LowRankPredictor, [Float]>, _ analytic: UnsafeMutablePointer<Float>) {
            for i in predictor[keyPath: keyPath].indices {
                var plus = predictor, minus = predictor
                plus[keyPath: keyPath][i] += h
                minus[keyPath: keyPath][i] -= h
                let step = Double(plus[keyPath: keyPath][i]) - Double(minus[keyPath: keyPath][i])
                let numeric = (loss(plus) - loss(minus)) / step
                #expect(abs(Double(analytic[i]) - numeric) < 1e-3 * max(1, abs(numeric)), "\(name)[\(i)]: \(analytic[i]) vs \(numeric)")
            }
        }
        check("down", \.down, state.downGradient)
        check("up", \.up, state.upGradient)
        check("bias", \.bias, state.biasGradient)
    }

    @Test func recallCountsPositivesAmongTheTopKWithTiesToTheLowerIndex() {
        let logits: [Float] = [
            0.5, 3, -1, 2, 2, 0,  // top 3: indices 1, 3, 4
            1, 1, 1, 1, 0, 5,     // top 3: index 5, then the tie at 1 goes to indices 0 and 1
        ]
        let labels: [UInt8] = [
            1, 1, 0, 0, 1, 0,  // 2 of 3 positives selected
            0, 1, 1, 0, 0, 1,  // 2 of 3 (index 2 loses the tie)
        ]
        let selected = PredictorTrainer.selectedPositives(logits: logits, labels: labels, rows: 2, outputSize: 6, topK: 3,
                                                          pool: ThreadPool(threadCount: 2))
        #expect(selected == 4)
    }

    @Test func recallAgreesWithSortingOnRowsFullOfTies() {
        var rng = SplitMix64(seed: 4)
        for count in [1, 2, 3, 17, 100, 4864] {
            // Few distinct values (both signs, and zeros), so ties are common.
            let distinct = max(2, count / 3)
            let values = (0..<count).map { _ in Float(Int.random(in: -distinct..<distinct, using: &rng)) * 0.37 }
            let labels = (0..<count).map { _ in UInt8.random(in: 0...1, using: &rng) }
            // Reference: indices ordered by value, ties by index, the first K selected.
            let order = values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
            for k in Set([1, count / 2, count, min(count, 7)]) where k >= 1 {
                let expected = order.prefix(k).reduce(0) { $0 + Int(labels[$1]) }
                let got = PredictorTrainer.selectedPositives(logits: values, labels: labels, rows: 1, outputSize: count, topK: k,
                                                             pool: ThreadPool(threadCount: 1))
                #expect(got == expected, "count \(count) K \(k)")
            }
        }
    }
}

extension LowRankPredictor {
    func logitsArray(_ inputs: [Float], rows: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * outputSize)
        inputs.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { logits(x.baseAddress!, rows: rows, into: $0.baseAddress!, pool: ThreadPool(threadCount: 2)) }
        }
        return out
    }
}

/// Opt-in timing at a realistic size (never fails on speed):
/// SPARROW_BENCH=1 swift test -c release --filter PredictorTrainerBenchmark
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SPARROW_BENCH"] != nil))
struct PredictorTrainerBenchmark {
    /// Qwen2.5-0.5B's MLP: inputs 896, 4864 neurons; rank 128, 16384 rows, labels ~20% positive.
    @Test func epochTime() throws {
        let rows = 16384, d = 896, f = 4864, epochs = 2
        var rng = SplitMix64(seed: 1)
        let inputs = (0..<(rows * d)).map { _ in Float(Int64(rng.next() >> 40) - (1 << 23)) * 0x1p-23 }
        let labels = (0..<(rows * f)).map { _ in UInt8(rng.next() % 5 == 0 ? 1 : 0) }
        let threads = Int(ProcessInfo.processInfo.environment["SPARROW_BENCH_THREADS"] ?? "") ?? 2
        let options = PredictorTrainer.Options(rank: 128, epochs: epochs, targetRecall: 2)
        let start = ContinuousClock.now
        let result = try inputs.withUnsafeBufferPointer { x in
            try labels.withUnsafeBufferPointer { y in
                try PredictorTrainer.train(inputs: x, labels: y, rows: rows, inputSize: d, outputSize: f, topK: 1024,
                                           options: options, pool: ThreadPool(threadCount: threads))
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print(String(format: "predictor training %d rows, %d → %d → %d, %d threads: %.3f s per epoch (incl. held-out recall and setup)",
                     rows, d, options.rank, f, threads, seconds / Double(epochs)), result.recallByEpoch)
    }
}
