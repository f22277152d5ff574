import Foundation
import SparrowKernels

/// A training request the trainer cannot run (sizes that do not fit, labels that are not 0/1,
/// nothing to learn), or a run that diverged.
public struct PredictorTrainingError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Trains a `LowRankPredictor` on float rows and 0/1 labels, as Deja Vu trains its MLP
/// predictors: binary cross-entropy with positives re-weighted, AdamW, and the epoch kept that
/// best recalls the held-out positives at top-K. It knows nothing of models.
///
/// The held-out rows are the LAST `heldOutFraction` of the rows, not a random sample: the rows
/// come from consecutive text, so neighbouring rows are near-duplicates and a random split would
/// leak them into the held-out set and overstate recall.
///
/// Nearly all the time goes to FloatGEMM (three products of batch × rank × outputSize per
/// step). One epoch over 16384 rows at 896 → 128 → 4864 took 0.22 s on 2 threads (idle
/// machine, held-out recall included; `PredictorTrainerBenchmark`).
public enum PredictorTrainer {
    public struct Options: Sendable {
        public var rank: Int
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Float
        /// AdamW's decoupled decay, applied to `down` and `up` (not to the bias).
        public var weightDecay: Float
        public var heldOutFraction: Double
        /// Training stops after the first epoch whose held-out recall reaches this (above 1: never).
        public var targetRecall: Double
        public var seed: UInt64

        public init(rank: Int = 64, epochs: Int = 20, batchSize: Int = 1024, learningRate: Float = 1e-3,
                    weightDecay: Float = 0.01, heldOutFraction: Double = 0.1, targetRecall: Double = 0.99, seed: UInt64 = 1) {
            self.rank = rank
            self.epochs = epochs
            self.batchSize = batchSize
            self.learningRate = learningRate
            self.weightDecay = weightDecay
            self.heldOutFraction = heldOutFraction
            self.targetRecall = targetRecall
            self.seed = seed
        }
    }

    public struct Result: Sendable {
        /// The predictor after `bestEpoch`.
        public let predictor: LowRankPredictor
        /// Its held-out recall at top-K.
        public let heldOutRecall: Double
        /// 1-based: recallByEpoch[bestEpoch - 1] == heldOutRecall.
        public let bestEpoch: Int
        /// Held-out recall after each epoch run (fewer than `epochs` when the target was reached).
        public let recallByEpoch: [Double]
    }

    /// inputs: rows × inputSize floats; labels: rows × outputSize bytes (0 or 1). Recall is
    /// measured on the held-out rows at top-K: per row, the K largest logits are "selected";
    /// recall = selected positives / all positives, summed over all held-out rows (so rows with
    /// more positives count for more).
    ///
    /// The result depends only on the data, the options and the seed, not on the pool's size.
    public static func train(
        inputs: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<UInt8>, rows: Int,
        inputSize: Int, outputSize: Int, topK: Int, options: Options, pool: ThreadPool
    ) throws -> Result {
        func fail(_ message: String) -> PredictorTrainingError { PredictorTrainingError(description: "predictor training: " + message) }
        guard inputSize >= 1, outputSize >= 1 else { throw fail("input size \(inputSize) and output size \(outputSize) must be at least 1") }
        guard options.rank >= 1 else { throw fail("rank \(options.rank) must be at least 1") }
        guard (1...outputSize).contains(topK) else { throw fail("top-K \(topK) is outside 1...\(outputSize)") }
        guard rows >= 0, inputs.count == rows * inputSize else {
            throw fail("\(inputs.count) input floats are not \(rows) rows of \(inputSize)")
        }
        guard labels.count == rows * outputSize else { throw fail("\(labels.count) labels are not \(rows) rows of \(outputSize)") }
        guard options.heldOutFraction > 0, options.heldOutFraction < 1 else {
            throw fail("held-out fraction \(options.heldOutFraction) is outside (0, 1)")
        }
        let heldOutRows = Int((Double(rows) * options.heldOutFraction).rounded())
        let trainingRows = rows - heldOutRows
        guard heldOutRows >= 1, trainingRows >= 1 else {
            throw fail("\(rows) rows are too few to hold out \(options.heldOutFraction) of them and train on the rest")
        }
        guard options.epochs >= 1, options.batchSize >= 1 else {
            throw fail("epochs \(options.epochs) and batch size \(options.batchSize) must be at least 1")
        }
        guard options.learningRate > 0, options.learningRate.isFinite, options.weightDecay >= 0, options.weightDecay.isFinite else {
            throw fail("learning rate \(options.learningRate) must be positive and weight decay \(options.weightDecay) non-negative")
        }

        // Label counts: the class weight, and each output's rate for its initial bias.
        let counts = try positiveCounts(labels.baseAddress!, rows: trainingRows, outputSize: outputSize, pool: pool)
        let trainingPositives = counts.reduce(0, +)
        let trainingNegatives = trainingRows * outputSize - trainingPositives
        guard trainingPositives > 0, trainingNegatives > 0 else {
            throw fail("the \(trainingRows) training rows have \(trainingPositives) positive and \(trainingNegatives) negative labels; both classes are needed")
        }
        let heldOutLabels = labels.baseAddress! + trainingRows * outputSize
        let heldOutPositives = try positiveCounts(heldOutLabels, rows: heldOutRows, outputSize: outputSize, pool: pool).reduce(0, +)
        guard heldOutPositives > 0 else { throw fail("the \(heldOutRows) held-out rows have no positive labels, so recall is undefined") }
        let positiveWeight = Float(Double(trainingNegatives) / Double(trainingPositives))

        var rng = Xoshiro256(seed: options.seed)
        var predictor = initialPredictor(inputSize: inputSize, rank: options.rank, outputSize: outputSize,
                                         positiveCounts: counts, rows: trainingRows, positiveWeight: positiveWeight, rng: &rng)
        var state = TrainingState(predictor: predictor, batchSize: min(options.batchSize, max(trainingRows, heldOutRows)))
        defer { state.deallocate() }

        var order = Array(0..<trainingRows)
        var best = predictor, bestRecall = -1.0, bestEpoch = 0
        var recallByEpoch: [Double] = []
        for epoch in 1...options.epochs {
            shuffle(&order, &rng)
            for start in stride(from: 0, to: trainingRows, by: options.batchSize) {
                let batch = order[start..<min(start + options.batchSize, trainingRows)]
                batch.withUnsafeBufferPointer { batch in
                    state.step(&predictor, batch: batch, inputs: inputs.baseAddress!, labels: labels.baseAddress!,
                               positiveWeight: positiveWeight, options: options, pool: pool)
                }
            }
            // (A closure, not the key path \.isFinite, which Swift applies at run time per element.)
            guard [predictor.bias, predictor.up, predictor.down].allSatisfy({ $0.allSatisfy { $0.isFinite } }) else {
                throw fail("training diverged in epoch \(epoch) (non-finite weights); try a lower learning rate")
            }
            let selected = state.selectedPositives(predictor, inputs: inputs.baseAddress! + trainingRows * inputSize,
                                                   labels: heldOutLabels, rows: heldOutRows, topK: topK, pool: pool)
            let recall = Double(selected) / Double(heldOutPositives)
            recallByEpoch.append(recall)
            if recall > bestRecall { (best, bestRecall, bestEpoch) = (predictor, recall, epoch) }
            if recall >= options.targetRecall { break }
        }
        return Result(predictor: best, heldOutRecall: bestRecall, bestEpoch: bestEpoch, recallByEpoch: recallByEpoch)
    }

    /// Positive labels per output over `rows` rows; throws on a label other than 0 or 1.
    static func positiveCounts(_ labels: UnsafePointer<UInt8>, rows: Int, outputSize: Int, pool: ThreadPool) throws -> [Int] {
        // Per worker: counts of its rows, and whether it saw a byte above 1.
        let workers = pool.threadCount
        var partial = [Int32](repeating: 0, count: workers * outputSize)
        var invalid = [Bool](repeating: false, count: workers)
        partial.withUnsafeMutableBufferPointer { partial in
            invalid.withUnsafeMutableBufferPointer { invalid in
                let partial = partial.baseAddress!, invalid = invalid.baseAddress!
                pool.run { worker, workerCount in
                    let share = (worker * rows / workerCount)..<((worker + 1) * rows / workerCount)
                    let counts = partial + worker * outputSize
                    var seen: UInt8 = 0
                    for r in share {
                        let row = labels + r * outputSize
                        for j in 0..<outputSize {
                            counts[j] &+= Int32(row[j])
                            seen |= row[j]
                        }
                    }
                    invalid[worker] = seen > 1
                }
            }
        }
        guard !invalid.contains(true) else {
            throw PredictorTrainingError(description: "predictor training: labels must be 0 or 1")
        }
        return (0..<outputSize).map { j in (0..<workers).reduce(0) { $0 + Int(partial[$1 * outputSize + j]) } }
    }

    /// Weights: PyTorch's Linear default, U(±1/√fan_in). Bias: per output, the constant logit
    /// that minimises the re-weighted loss given that output's positive rate p in the training
    /// rows, σ(b) = w·p / (w·p + 1 - p), i.e. b = log w + logit p (p smoothed by half a count).
    /// Training then starts from the outputs' base rates, the best guess that ignores the input,
    /// and the low-rank part only has to learn what depends on it. (A zero bias is that optimum
    /// only for an output whose rate is the overall one, where w makes both classes weigh alike.)
    static func initialPredictor(inputSize: Int, rank: Int, outputSize: Int, positiveCounts: [Int], rows: Int,
                                 positiveWeight: Float, rng: inout Xoshiro256) -> LowRankPredictor {
        func uniform(_ count: Int, bound: Float) -> [Float] {
            (0..<count).map { _ in (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * bound }
        }
        let down = uniform(rank * inputSize, bound: 1 / Float(inputSize).squareRoot())
        let up = uniform(outputSize * rank, bound: 1 / Float(rank).squareRoot())
        let logWeight = log(Double(positiveWeight))
        let bias = positiveCounts.map { count in
            let p = (Double(count) + 0.5) / (Double(rows) + 1)
            return Float(logWeight + log(p / (1 - p)))
        }
        return LowRankPredictor(inputSize: inputSize, rank: rank, outputSize: outputSize, down: down, up: up, bias: bias)
    }

    /// Fisher-Yates with the trainer's own generator, so an order depends only on the seed.
    static func shuffle(_ order: inout [Int], _ rng: inout Xoshiro256) {
        guard order.count > 1 else { return }
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int(UInt64(i + 1).multipliedFullWidth(by: rng.next()).high)
            order.swapAt(i, j)
        }
    }
}

/// Scratch buffers and AdamW moments for one training run.
struct TrainingState {
    let inputSize: Int, rank: Int, outputSize: Int, batchSize: Int
    /// Batch rows gathered from the shuffled order (batchSize × inputSize).
    let batchInputs: UnsafeMutablePointer<Float>
    /// down · x per row (batchSize × rank), and the loss gradient with respect to it.
    let hidden: UnsafeMutablePointer<Float>, hiddenGradient: UnsafeMutablePointer<Float>
    /// Logits, then in place their loss gradient (batchSize × outputSize).
    let logits: UnsafeMutablePointer<Float>
    let downGradient: UnsafeMutablePointer<Float>, upGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>
    /// Column sums of the logit gradient per block of `sumRows` rows.
    let blockSums: UnsafeMutablePointer<Float>
    static let sumRows = 64
    var down: AdamMoments, up: AdamMoments, bias: AdamMoments
    /// AdamW steps taken (for bias correction).
    var steps = 0

    init(predictor: LowRankPredictor, batchSize: Int) {
        inputSize = predictor.inputSize
        rank = predictor.rank
        outputSize = predictor.outputSize
        self.batchSize = batchSize
        batchInputs = .allocate(capacity: batchSize * inputSize)
        hidden = .allocate(capacity: batchSize * rank)
        hiddenGradient = .allocate(capacity: batchSize * rank)
        logits = .allocate(capacity: batchSize * outputSize)
        downGradient = .allocate(capacity: rank * inputSize)
        upGradient = .allocate(capacity: outputSize * rank)
        biasGradient = .allocate(capacity: outputSize)
        blockSums = .allocate(capacity: (batchSize + Self.sumRows - 1) / Self.sumRows * outputSize)
        down = AdamMoments(count: rank * inputSize)
        up = AdamMoments(count: outputSize * rank)
        bias = AdamMoments(count: outputSize)
    }

    func deallocate() {
        for p in [batchInputs, hidden, hiddenGradient, logits, downGradient, upGradient, biasGradient, blockSums] { p.deallocate() }
        down.deallocate()
        up.deallocate()
        bias.deallocate()
    }

    /// One AdamW step on the training rows `batch`.
    mutating func step(_ predictor: inout LowRankPredictor, batch: UnsafeBufferPointer<Int>, inputs: UnsafePointer<Float>,
                       labels: UnsafePointer<UInt8>, positiveWeight: Float, options: PredictorTrainer.Options, pool: ThreadPool) {
        gradients(predictor, batch: batch, inputs: inputs, labels: labels, positiveWeight: positiveWeight, pool: pool)
        steps += 1
        let lr = options.learningRate, decay = options.weightDecay, t = steps
        predictor.down.withUnsafeMutableBufferPointer { down.update($0.baseAddress!, gradient: downGradient, step: t, learningRate: lr, weightDecay: decay, pool: pool) }
        predictor.up.withUnsafeMutableBufferPointer { up.update($0.baseAddress!, gradient: upGradient, step: t, learningRate: lr, weightDecay: decay, pool: pool) }
        predictor.bias.withUnsafeMutableBufferPointer { bias.update($0.baseAddress!, gradient: biasGradient, step: t, learningRate: lr, weightDecay: 0, pool: pool) }
    }

    /// The loss gradients for the rows `batch` into downGradient, upGradient and biasGradient.
    /// The loss is the weighted cross-entropy summed over outputs and averaged over the batch's
    /// rows (Adam ignores the loss's scale except against its epsilon, and a per-element mean
    /// would shrink gradients to near that epsilon).
    func gradients(_ predictor: LowRankPredictor, batch: UnsafeBufferPointer<Int>, inputs: UnsafePointer<Float>,
                   labels: UnsafePointer<UInt8>, positiveWeight: Float, pool: ThreadPool) {
        let n = batch.count, d = inputSize, r = rank, f = outputSize
        let x = batchInputs, logits = logits
        pool.parallelFor(n) { rows in
            for i in rows { (x + i * d).update(from: inputs + batch[i] * d, count: d) }
        }
        predictor.forward(x, rows: n, hidden: hidden, logits: logits, pool: pool)
        // The logits become their gradient G (n × f), and bias' = Gᵀ · 1 is summed on the way:
        // per block of `sumRows` rows, then the blocks in order, so the sums do not depend on
        // how the rows are shared among workers.
        let scale = 1 / Float(n), sums = blockSums, blocks = (n + Self.sumRows - 1) / Self.sumRows
        pool.parallelFor(blocks) { range in
            for block in range {
                let sum = sums + block * f, first = block * Self.sumRows
                for i in first..<min(n, first + Self.sumRows) {
                    let g = logits + i * f
                    weightedLogisticGradient(g, labels: labels + batch[i] * f, positiveWeight: positiveWeight, scale: scale, count: f)
                    if i == first { sum.update(from: g, count: f) } else { add(g, into: sum, count: f) }
                }
            }
        }
        let bias = biasGradient
        pool.parallelFor((f + 15) / 16) { range in
            let columns = (range.lowerBound * 16)..<min(f, range.upperBound * 16)
            (bias + columns.lowerBound).update(from: sums + columns.lowerBound, count: columns.count)
            for block in 1..<blocks { add(sums + block * f + columns.lowerBound, into: bias + columns.lowerBound, count: columns.count) }
        }
        // up' = Gᵀ · hidden, hidden' = G · up, down' = hidden'ᵀ · x.
        FloatGEMM.multiply(m: f, n: r, k: n, a: logits, transposeA: true, b: hidden, into: upGradient, pool: pool)
        predictor.up.withUnsafeBufferPointer { up in
            FloatGEMM.multiply(m: n, n: r, k: f, a: logits, b: up.baseAddress!, into: hiddenGradient, pool: pool)
        }
        FloatGEMM.multiply(m: r, n: d, k: n, a: hiddenGradient, transposeA: true, b: x, into: downGradient, pool: pool)
    }

    /// How many of the positive labels of `rows` rows are among their row's top-K logits.
    /// Logits are computed in batches of `batchSize` rows.
    func selectedPositives(_ predictor: LowRankPredictor, inputs: UnsafePointer<Float>, labels: UnsafePointer<UInt8>,
                           rows: Int, topK: Int, pool: ThreadPool) -> Int {
        var total = 0
        for start in stride(from: 0, to: rows, by: batchSize) {
            let n = min(batchSize, rows - start)
            predictor.forward(inputs + start * inputSize, rows: n, hidden: hidden, logits: logits, pool: pool)
            total += PredictorTrainer.selectedPositives(logits: logits, labels: labels + start * outputSize, rows: n,
                                                        outputSize: outputSize, topK: topK, pool: pool)
        }
        return total
    }
}

extension PredictorTrainer {
    /// Over `rows` rows of logits and labels: how many positive labels are at one of their
    /// row's `topK` largest logits (`Selection.largest`: ties at the K-th value go to the lower index).
    static func selectedPositives(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>, rows: Int,
                                  outputSize: Int, topK: Int, pool: ThreadPool) -> Int {
        let workers = pool.threadCount
        var counts = [Int](repeating: 0, count: workers)
        counts.withUnsafeMutableBufferPointer { counts in
            let counts = counts.baseAddress!
            pool.run { worker, workerCount in
                let share = (worker * rows / workerCount)..<((worker + 1) * rows / workerCount)
                guard !share.isEmpty else { return }
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
                let top = UnsafeMutablePointer<Int32>.allocate(capacity: topK)
                defer { scratch.deallocate(); top.deallocate() }
                var selected = 0
                for r in share {
                    Selection.largest(topK, of: logits + r * outputSize, count: outputSize, scratch: scratch, into: top)
                    let y = labels + r * outputSize
                    for i in 0..<topK { selected += Int(y[Int(top[i])]) }
                }
                counts[worker] = selected
            }
        }
        return counts.reduce(0, +)
    }
}

/// AdamW's first and second moments for one weight tensor (β 0.9 / 0.999, ε 1e-8).
struct AdamMoments {
    let count: Int
    let first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>

    init(count: Int) {
        self.count = count
        first = .allocate(capacity: count)
        first.initialize(repeating: 0, count: count)
        second = .allocate(capacity: count)
        second.initialize(repeating: 0, count: count)
    }

    func deallocate() {
        first.deallocate()
        second.deallocate()
    }

    /// One AdamW update (step t counts from 1), as PyTorch's AdamW: decay w by lr·λ first,
    /// then w -= lr · m̂ / (√v̂ + ε) with the bias-corrected moments.
    func update(_ w: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>, step t: Int,
                learningRate: Float, weightDecay: Float, pool: ThreadPool) {
        let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
        let keep = 1 - learningRate * weightDecay
        let stepSize = learningRate / (1 - pow(beta1, Float(t)))
        let correction2 = 1 / (1 - pow(beta2, Float(t)))
        let m = first, v = second
        typealias V = SIMD16<Float>
        pool.parallelFor((count + 15) / 16) { blocks in
            var i = blocks.lowerBound * 16
            let end = min(count, blocks.upperBound * 16)
            func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p + i).loadUnaligned(as: V.self) }
            func store(_ x: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p + i).storeBytes(of: x, as: V.self) }
            while i + 16 <= end {
                let gi = load(g)
                let mi = V(repeating: beta1) * load(m) + V(repeating: 1 - beta1) * gi
                let vi = V(repeating: beta2) * load(v) + V(repeating: 1 - beta2) * gi * gi
                store(mi, m)
                store(vi, v)
                let denominator = (vi * V(repeating: correction2)).squareRoot() + V(repeating: epsilon)
                store(load(w) * V(repeating: keep) - V(repeating: stepSize) * mi / denominator, w)
                i += 16
            }
            while i < end {
                m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
                w[i] = w[i] * keep - stepSize * m[i] / ((v[i] * correction2).squareRoot() + epsilon)
                i += 1
            }
        }
    }
}
