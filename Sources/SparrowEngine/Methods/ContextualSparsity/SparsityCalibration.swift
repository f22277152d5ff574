import Foundation
import SparrowKernels

/// `sparrow calibrate sparsity`: runs the dense model over calibration text, collecting every
/// layer's feed-forward inputs and its neurons' importance |act(gate·x) · (up·x)| · |down
/// column| (what skipping the neuron takes out of the block's output), then per layer
/// trains the low-rank predictor, sets the training-free rules' thresholds at each sparsity
/// level and measures every rule's error per level on held-out rows.
public enum SparsityCalibration {
    public struct Options: Sendable {
        /// Calibration text tokens (one training row per token and layer).
        public var tokens = 16384
        public var window = 512
        public var rank = 64
        /// The subspace rule's rank.
        public var subspaceRank = 64
        public var epochs = 20
        /// Rows per optimiser step: small, so that a few thousand rows still give many steps.
        public var batchSize = 256
        /// The most important fraction of each row's neurons: the predictor's positive labels.
        public var labelFraction = 0.3
        /// Neurons computed when recall is measured (checkpointing), as a fraction.
        public var recallBudget = 0.5
        /// Rows, at the end of the text, for thresholds and error curves (the trainer holds
        /// out the last tenth of rows, so these are never trained on).
        public var heldOutRows = 384
        public var levels: [Double] = (0..<10).map { Double($0) / 10 }
        /// The candidate head's largest preview rank (any multiple of 32 up to it can run).
        public var headRank = 256
        public init() {}
    }

    public static func run(model: LanguageModel, text: String, textName: String, modelSHA256: String, options: Options,
                           pool: ThreadPool, log: (String) -> Void) throws -> SparsitySidecar {
        let start = Date(), c = model.config, f = c.feedForwardSize, d = c.embeddingSize
        guard [options.rank, options.subspaceRank, options.headRank].allSatisfy({ $0 > 0 && $0 % 32 == 0 }), options.headRank < d else {
            throw SparsityError("the predictor, subspace and head ranks must be positive multiples of 32 (the head's below \(d))")
        }
        var tokens = model.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        tokens = Array(tokens.prefix(options.tokens))
        let bos = model.tokenizer.addsBOS ? model.tokenizer.bosToken : nil
        let perWindow = options.window - (bos == nil ? 0 : 1)
        let windows = stride(from: 0, to: tokens.count, by: perWindow).map { tokens[$0..<min($0 + perWindow, tokens.count)] }
        let rows = windows.reduce(0) { $0 + $1.count + (bos == nil ? 0 : 1) }
        guard rows >= options.heldOutRows * 10 else {
            throw SparsityError("the calibration text gives \(rows) rows; at least \(options.heldOutRows * 10) are needed")
        }

        let collector = Collector(model: model.transformer, rows: rows, heldOut: options.heldOutRows, labelFraction: options.labelFraction,
                                  pool: pool)
        let session = Session(model: model.transformer, contextSize: options.window, pool: pool)
        session.feedForwardObserver = collector
        for (i, window) in windows.enumerated() {
            session.truncate(to: 0)
            // Logits for every row, so that the last layer's block runs on every row too.
            try session.evaluate((bos.map { [$0] } ?? []) + window, logits: .all)
            log("collected window \(i + 1)/\(windows.count)")
        }
        session.feedForwardObserver = nil

        var blob: [UInt8] = []
        func append(_ bytes: UnsafeRawBufferPointer) -> Int {
            blob += [UInt8](repeating: 0, count: (64 - blob.count % 64) % 64)
            let offset = blob.count
            blob += bytes
            return offset
        }
        let matmul = MatMul(pool: pool)
        var layers: [SparsitySidecar.Layer] = []
        for l in 0..<c.layerCount {
            let data = collector.layers[l]
            var training = PredictorTrainer.Options()
            training.rank = options.rank
            training.epochs = options.epochs
            training.batchSize = options.batchSize
            let trained = try data.inputs.withUnsafeBufferPointer { inputs in
                try data.labels.withUnsafeBufferPointer { labels in
                    try PredictorTrainer.train(inputs: inputs, labels: labels, rows: rows, inputSize: d, outputSize: f,
                                               topK: Int(options.recallBudget * Double(f)), options: training, pool: pool)
                }
            }
            let p = trained.predictor
            let down = quantizedRows(p.down, rows: options.rank, cols: d), up = quantizedRows(p.up, rows: f, cols: options.rank)
            let offsets = (down.withUnsafeBytes(append), up.withUnsafeBytes(append), p.bias.withUnsafeBytes(append))
            let basis = data.inputs.withUnsafeBufferPointer {
                PrincipalSubspace.basis(of: $0.baseAddress!, count: rows - options.heldOutRows, width: d, rank: options.subspaceRank, pool: pool)
            }
            let weights = model.transformer.layers[l]
            let subspace = (quantizedRows(basis, rows: options.subspaceRank, cols: d).withUnsafeBytes(append),
                            quantizedProjection(weights.gate, onto: basis, rank: options.subspaceRank, pool: pool).withUnsafeBytes(append),
                            quantizedProjection(weights.up, onto: basis, rank: options.subspaceRank, pool: pool).withUnsafeBytes(append),
                            collector.columnNorms[l].map { $0.squareRoot() }.withUnsafeBytes(append))
            let gateThresholds = quantiles(data.gateMagnitudes, at: options.levels)
            let activationThresholds = quantiles(data.activationMagnitudes, at: options.levels)
            let errors = [
                SparsityRule.cats.rawValue: droppedEnergy(data.importance, by: data.gateMagnitudes, thresholds: gateThresholds, neurons: f),
                SparsityRule.teal.rawValue: droppedEnergy(data.importance, by: data.activationMagnitudes, thresholds: activationThresholds, neurons: f),
            ]
            layers.append(SparsitySidecar.Layer(gateThresholds: gateThresholds, activationThresholds: activationThresholds, errors: errors,
                                                predictorRecall: trained.heldOutRecall, predictorDown: offsets.0, predictorUp: offsets.1,
                                                predictorBias: offsets.2, subspaceBasis: subspace.0, subspaceGate: subspace.1,
                                                subspaceUp: subspace.2, downColumnNorms: subspace.3))
            log(String(format: "layer %d: predictor recall %.3f (epoch %d)", l, trained.heldOutRecall, trained.bestEpoch))
        }
        let head = HeadPreview.factors(output: model.transformer.output, secondMoments: collector.headMoments.map { $0 / Double(rows) },
                                       rank: options.headRank, pool: pool)
        let headOffsets = (head.project.withUnsafeBytes(append), head.expand.withUnsafeBytes(append))
        log("head preview: " + head.captured.enumerated().map { String(format: "rank %d keeps %.2f%%", 32 * ($0 + 1), 100 * $1) }.joined(separator: ", ")
            + " of the logits' energy")
        var header = SparsitySidecar.Header(modelSHA256: modelSHA256, embeddingSize: d, feedForwardSize: f, rank: options.rank,
                                            subspaceRank: options.subspaceRank, levels: options.levels, layers: layers,
                                            calibration: .init(text: textName, tokens: tokens.count, heldOutRows: options.heldOutRows, seconds: 0),
                                            head: .init(rank: options.headRank, project: headOffsets.0, expand: headOffsets.1,
                                                        capturedEnergy: head.captured))
        // The ranking rules' errors, from the held-out rows through the quantised matrices as decode runs them.
        let draft = try SparsitySidecar(header: header, blob: blob)
        let n = options.heldOutRows
        var rank = [Float](repeating: 0, count: n * max(options.rank, options.subspaceRank))
        var scratch = [Float](repeating: 0, count: n * f), scores = scratch
        for l in 0..<c.layerCount {
            let data = collector.layers[l]
            for rule in [SparsityRule.predictor, .subspace] {
                data.inputs.withUnsafeBufferPointer { inputs in
                    ContextualSparsity.rankingScores(rule, sidecar: draft, layer: l, activation: c.architecture.activation,
                                                     input: inputs.baseAddress! + (rows - n) * d, rows: n, matmul: matmul,
                                                     rank: &rank, up: &scratch, into: &scores)
                }
                header.layers[l].errors[rule.rawValue] = droppedEnergy(data.importance, rankedBy: scores, neurons: f, levels: options.levels)
            }
            let e = header.layers[l].errors
            log(String(format: "layer %d: skipping half the neurons drops %.3f%% (predictor), %.3f%% (subspace), %.3f%% (cats), %.3f%% (teal) of the residual's energy",
                       l, 100 * e["predictor"]![5], 100 * e["subspace"]![5], 100 * e["cats"]![5], 100 * e["teal"]![5]))
        }
        header.calibration.seconds = Date().timeIntervalSince(start)
        return try SparsitySidecar(header: header, blob: blob)
    }

    /// W (rows x width) times the basis' transpose (rank x width), as Q8_0 rows: W's rows in
    /// the basis' coordinates. A chunk of rows at a time, as an output projection in f32 would
    /// take half a gigabyte.
    static func quantizedProjection(_ w: WeightMatrix, onto basis: UnsafePointer<Float>, rank: Int, pool: ThreadPool) -> [UInt8] {
        let chunk = 4096, rowBytes = q8_0RowBytes(cols: rank)
        var out = [UInt8](repeating: 0, count: w.rows * rowBytes)
        var dense = [Float](repeating: 0, count: chunk * w.cols), projected = [Float](repeating: 0, count: chunk * rank)
        for start in stride(from: 0, to: w.rows, by: chunk) {
            let n = min(chunk, w.rows - start)
            dense.withUnsafeMutableBufferPointer { d in for r in 0..<n { w.dequantizeRow(start + r, into: d.baseAddress! + r * w.cols) } }
            FloatGEMM.multiply(m: n, n: rank, k: w.cols, a: dense, b: basis, transposeB: true, into: &projected, pool: pool)
            projected.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBytes { o in
                    for r in 0..<n { quantizeQ8_0(p.baseAddress! + r * rank, count: rank, into: o.baseAddress! + (start + r) * rowBytes) }
                }
            }
        }
        return out
    }

    /// Row-major floats as Q8_0 rows.
    static func quantizedRows(_ values: [Float], rows: Int, cols: Int) -> [UInt8] {
        let rowBytes = q8_0RowBytes(cols: cols)
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBytes { o in
                for r in 0..<rows { quantizeQ8_0(v.baseAddress! + r * cols, count: cols, into: o.baseAddress! + r * rowBytes) }
            }
        }
        return out
    }

    /// The value below which each fraction of `values` lies.
    static func quantiles(_ values: [Float], at fractions: [Double]) -> [Float] {
        let sorted = values.sorted()
        return fractions.map { fraction in
            fraction == 0 ? -1 : sorted[min(sorted.count - 1, Int(fraction * Double(sorted.count)))]
        }
    }

    /// Per threshold, the importance in entries whose score is at most it, per row.
    static func droppedEnergy(_ importance: [Float], by score: [Float], thresholds: [Float], neurons f: Int) -> [Double] {
        thresholds.map { t in
            var dropped = 0.0
            for i in importance.indices where score[i] <= t { dropped += Double(importance[i]) }
            return dropped / Double(importance.count / f)
        }
    }

    /// Per level, the importance outside each row's top (1 - level) by `logits`, per row.
    static func droppedEnergy(_ importance: [Float], rankedBy logits: [Float], neurons f: Int, levels: [Double]) -> [Double] {
        var dropped = [Double](repeating: 0, count: levels.count)
        for r in 0..<(importance.count / f) {
            let order = (0..<f).sorted { logits[r * f + $0] > logits[r * f + $1] }
            var kept = 0.0, rowTotal = 0.0, next = 0
            for i in 0..<f { rowTotal += Double(importance[r * f + i]) }
            // Levels ascend, so kept counts descend: walk the ranking once per level from the top.
            for (k, level) in levels.enumerated().reversed() {
                let keep = ContextualSparsity.keptNeurons(f, atLevel: level)
                while next < keep { kept += Double(importance[r * f + order[next]]); next += 1 }
                dropped[k] += rowTotal - kept
            }
        }
        return dropped.map { $0 / Double(importance.count / f) }
    }

    /// Records, per layer, the feed-forward inputs, the predictor's labels and (for the
    /// held-out rows) each neuron's |act(gate)|, |act(gate) * up| and importance; and the
    /// output projection's inputs' second moments (summed).
    final class Collector: FeedForwardObserver {
        struct LayerData {
            var inputs: [Float]
            var labels: [UInt8]
            var gateMagnitudes, activationMagnitudes, importance: [Float]
            var rowsSeen = 0
        }

        let rows, heldOut, labelCount, f, d: Int
        let activation: GatedActivation
        var layers: [LayerData]
        /// Per layer, each neuron's squared down column norm.
        let columnNorms: [[Float]]
        /// The sum of h hᵀ over the head's inputs h (d x d).
        var headMoments: [Double]
        private var chunkMoments: [Float]

        private let pool: ThreadPool

        init(model: TransformerModel, rows: Int, heldOut: Int, labelFraction: Double, pool: ThreadPool) {
            let c = model.config
            self.pool = pool
            self.rows = rows
            self.heldOut = heldOut
            f = c.feedForwardSize
            d = c.embeddingSize
            labelCount = Int(labelFraction * Double(c.feedForwardSize))
            activation = c.architecture.activation
            headMoments = [Double](repeating: 0, count: d * d)
            chunkMoments = [Float](repeating: 0, count: d * d)
            layers = (0..<c.layerCount).map { [f, d] _ in
                LayerData(inputs: [Float](repeating: 0, count: rows * d), labels: [UInt8](repeating: 0, count: rows * f),
                          gateMagnitudes: [], activationMagnitudes: [], importance: [])
            }
            columnNorms = model.layers.map { layer in
                var norms = [Float](repeating: 0, count: layer.down.cols), row = [Float](repeating: 0, count: layer.down.cols)
                for r in 0..<layer.down.rows {
                    layer.down.dequantizeRow(r, into: &row)
                    for i in 0..<row.count { norms[i] += row[i] * row[i] }
                }
                return norms
            }
        }

        func observeHead(input: UnsafePointer<Float>, rows n: Int) {
            // One chunk's sum in f32 (a few hundred rows), the running total in Double.
            FloatGEMM.multiply(m: d, n: d, k: n, a: input, transposeA: true, b: input, into: &chunkMoments, pool: pool)
            for i in headMoments.indices { headMoments[i] += Double(chunkMoments[i]) }
        }

        func observe(layer l: Int, input: UnsafePointer<Float>, residual: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                     up: UnsafePointer<Float>, rows n: Int) {
            var acted = [Float](repeating: 0, count: f), ones = [Float](repeating: 1, count: f)
            var importance = [Float](repeating: 0, count: f), scratch = [Float](repeating: 0, count: f)
            var top = [Int32](repeating: 0, count: f)
            for t in 0..<n {
                let row = layers[l].rowsSeen
                layers[l].rowsSeen += 1
                layers[l].inputs.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: row * d).update(from: input + t * d, count: d) }
                acted.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: gate + t * f, count: f) }
                activation.apply(gate: &acted, up: &ones, count: f)
                // Relative to the residual stream the block adds to, so that errors compare
                // across layers: a layer whose output is small beside its residual can skip more.
                var residualEnergy: Float = 0
                for j in 0..<d { residualEnergy += residual[t * d + j] * residual[t * d + j] }
                let scale = 1 / max(residualEnergy, .leastNormalMagnitude)
                for i in 0..<f {
                    let h = acted[i] * up[t * f + i]
                    importance[i] = h * h * columnNorms[l][i] * scale
                }
                Selection.largest(labelCount, of: importance, count: f, scratch: &scratch, into: &top)
                for i in top.prefix(labelCount) { layers[l].labels[row * f + Int(i)] = 1 }
                if row >= rows - heldOut {
                    layers[l].gateMagnitudes += acted.map(abs)
                    layers[l].activationMagnitudes += (0..<f).map { abs(acted[$0] * up[t * f + $0]) }
                    layers[l].importance += importance
                }
            }
        }
    }
}
