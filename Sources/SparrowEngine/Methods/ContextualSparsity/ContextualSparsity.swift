import SparrowKernels

/// How a decode step chooses a layer's live feed-forward neurons.
public enum SparsityRule: String, CaseIterable, Codable, Sendable {
    /// Deja Vu: a low-rank predictor reads the block's input; the top-K of its logits are
    /// computed (gate, up and down read for those neurons only).
    case predictor
    /// The gate and up projections through the inputs' principal subspace (rank r, from
    /// calibration) estimate |act(gate·x) * (up·x)| * |down column|; the top-K are computed.
    case subspace
    /// CATS: the gate is computed in full; neurons with small |act(gate)| skip up and down.
    case cats
    /// TEAL-style on the down projection's input: gate and up in full; neurons with small
    /// |act(gate) * up| skip down.
    case teal
}

/// Deja Vu contextual sparsity for gated (SwiGLU / GeGLU) feed-forward blocks, on decode
/// steps: per token and layer only the selected neurons' rows of gate and up, and rows of a
/// transposed copy of down, are read. Budgets per layer come from the sidecar's measured
/// errors under a global sparsity (greedy: each step sparsifies the layer it costs least),
/// among the levels at which a layer reads fewer bytes than its dense block (the Q8_0 copy of
/// down is larger than a 4- or 6-bit original, so a lightly thinned layer would be slower).
public final class ContextualSparsity: DecodeFeedForward, @unchecked Sendable {
    public let rule: SparsityRule
    /// Per layer, the fraction of neurons skipped (0: the dense block runs).
    public let layerSparsity: [Double]
    /// Tokens whose logits a decode step computes exactly (see `CandidateHead`); 0: the dense
    /// head runs.
    public var headCandidates: Int { head?.candidates ?? 0 }
    /// The candidate head's preview rank (0 without one).
    public var headRank: Int { head?.rank ?? 0 }
    /// Under TEAL, in the layers it thins, the fraction of up's rows skipped by the gate
    /// (CATS's threshold on |act(gate)| at this calibrated level; 0: up is read in full).
    public var upSparsity: Double { sidecar.header.levels[upLevel] }
    /// Weight bytes one decode step reads (the whole model, the predictors included).
    public let weightBytesPerToken: Int
    private let levelIndices: [Int]
    /// The index of `upSparsity` in the sidecar's levels.
    private let upLevel: Int
    private let model: TransformerModel
    private let sidecar: SparsitySidecar
    private let matmul: MatMul
    /// Per sparse layer, down by columns (a neuron's weights contiguous); nil for dense layers.
    private let downColumns: [ColumnMajorInt8Matrix?]
    private let head: CandidateHead?
    private let gate, up, scores, scratch, ones, rank: UnsafeMutablePointer<Float>
    private let selected: UnsafeMutablePointer<Int32>

    public init(model: TransformerModel, sidecar: SparsitySidecar, rule: SparsityRule, sparsity: Double, headCandidates: Int = 0,
                headRank: Int = 128, upSparsity: Double = 0, pool: ThreadPool) throws {
        let header = sidecar.header, f = model.config.feedForwardSize
        guard let top = header.levels.last, (0...top).contains(sparsity) else {
            throw SparsityError("sparsity \(sparsity) outside the calibrated 0...\(header.levels.last ?? 0)")
        }
        guard let upLevel = header.levels.firstIndex(where: { abs($0 - upSparsity) < 1e-6 }) else {
            throw SparsityError("up sparsity \(upSparsity) is not a calibrated level (\(header.levels.map { String($0) }.joined(separator: ", ")))")
        }
        guard upLevel == 0 || rule == .teal else { throw SparsityError("up sparsity applies to the teal rule only, not \(rule.rawValue)") }
        self.upLevel = upLevel
        self.rule = rule
        self.model = model
        self.sidecar = sidecar
        matmul = MatMul(pool: pool)
        let bytes = model.layers.indices.map { FeedForwardBytes(model: model, sidecar: sidecar, layer: $0) }
        let fewerBytes = bytes.map { b in
            (1..<header.levels.count).first { b.sparse(rule, kept: 1 - header.levels[$0]) < b.dense } ?? header.levels.count
        }
        let indices = Self.allocate(errors: header.layers.map { $0.errors[rule.rawValue] ?? [] }, levels: header.levels,
                                    sparsity: sparsity, firstUseful: fewerBytes)
        levelIndices = indices
        layerSparsity = indices.map { header.levels[$0] }
        guard headCandidates >= 0 else { throw SparsityError("head candidates \(headCandidates) must be at least 0 (0: dense head)") }
        if headCandidates > 0 {
            guard let factors = sidecar.headPreview else {
                throw SparsityError("this sparsity sidecar has no head preview (it predates candidate heads): recalibrate with `sparrow calibrate sparsity`")
            }
            head = try CandidateHead(output: model.output, factors: factors, rank: headRank, candidates: headCandidates, pool: pool)
        } else {
            head = nil
        }
        let headSaved = head.map { model.output.byteCount - $0.bytesPerToken } ?? 0
        weightBytesPerToken = model.weightBytesPerToken - headSaved - zip(bytes, layerSparsity).reduce(0) { saved, layer in
            let (b, s) = layer
            return saved + (s > 0 ? Int(b.dense - b.sparse(rule, kept: 1 - s, upKept: 1 - header.levels[upLevel])) : 0)
        }
        let workers = pool.threadCount
        downColumns = model.layers.enumerated().map { l, layer in indices[l] > 0 ? ColumnMajorInt8Matrix(layer.down, workers: workers) : nil }
        gate = .allocate(capacity: f)
        up = .allocate(capacity: f)
        scores = .allocate(capacity: f)
        scratch = .allocate(capacity: f)
        ones = .allocate(capacity: f)
        ones.initialize(repeating: 1, count: f)
        rank = .allocate(capacity: max(header.rank, header.subspaceRank, 1))
        selected = .allocate(capacity: f)
    }

    deinit {
        for p in [gate, up, scores, scratch, ones, rank] { p.deallocate() }
        selected.deallocate()
    }

    /// Mean sparsity over layers.
    public var meanSparsity: Double { layerSparsity.reduce(0, +) / Double(max(layerSparsity.count, 1)) }

    public func logits(input: UnsafePointer<Float>, into logits: UnsafeMutablePointer<Float>) -> Bool {
        guard let head else { return false }
        head.logits(input: input, into: logits, matmul: matmul)
        return true
    }

    public func compute(layer l: Int, input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) -> Bool {
        guard let down = downColumns[l] else { return false }
        let weights = model.layers[l], f = model.config.feedForwardSize, activation = model.config.architecture.activation
        let level = levelIndices[l], thresholds = sidecar.header.layers[l]
        var count: Int
        switch rule {
        case .predictor, .subspace:
            Self.rankingScores(rule, sidecar: sidecar, layer: l, activation: activation, input: input, rows: 1, matmul: matmul,
                               rank: rank, up: up, into: scores)
            count = Self.keptNeurons(f, atLevel: sidecar.header.levels[level])
            Selection.largest(count, of: scores, count: f, scratch: scratch, into: selected)
            matmul.selectedRows(weights.gate, input, rows: UnsafeBufferPointer(start: selected, count: count), into: gate)
            matmul.selectedRows(weights.up, input, rows: UnsafeBufferPointer(start: selected, count: count), into: up)
            activation.apply(gate: gate, up: up, count: count)
            for i in 0..<count { scores[Int(selected[i])] = gate[i] }
        case .cats:
            count = upByGate(layer: l, threshold: thresholds.gateThresholds[level], input: input)
            for i in 0..<count { scores[Int(selected[i])] *= up[i] }
        case .teal where upLevel > 0:
            // CATS picks up's rows, then TEAL the computed neurons' down columns, compacted in place.
            let computed = upByGate(layer: l, threshold: thresholds.gateThresholds[upLevel], input: input)
            let threshold = thresholds.activationThresholds[level]
            count = 0
            for i in 0..<computed {
                let j = Int(selected[i]), product = scores[j] * up[i]
                scores[j] = product
                if abs(product) > threshold {
                    selected[count] = Int32(j)
                    count += 1
                }
            }
        case .teal:
            matmul(weights.gate, input, tokens: 1, into: scores)
            matmul(weights.up, input, tokens: 1, into: up)
            activation.apply(gate: scores, up: up, count: f)
            count = Selection.above(thresholds.activationThresholds[level], magnitudesOf: scores, count: f, into: selected)
        }
        // `scores` holds every selected neuron's activation at its index.
        matmul.selectedColumns(down, scores, columns: UnsafeBufferPointer(start: selected, count: count), into: output)
        return true
    }

    /// CATS's selection: the gate in full, activated into `scores`; the neurons whose
    /// |act(gate)| passes `threshold` into `selected`, and their rows of up into `up`.
    /// Returns how many.
    private func upByGate(layer l: Int, threshold: Float, input: UnsafePointer<Float>) -> Int {
        let weights = model.layers[l], f = model.config.feedForwardSize
        matmul(weights.gate, input, tokens: 1, into: scores)
        model.config.architecture.activation.apply(gate: scores, up: ones, count: f)
        let count = Selection.above(threshold, magnitudesOf: scores, count: f, into: selected)
        matmul.selectedRows(weights.up, input, rows: UnsafeBufferPointer(start: selected, count: count), into: up)
        return count
    }

    /// Per row of `input`, every neuron's score under a ranking rule (the predictor's logits,
    /// or the subspace estimate of |act(gate·x) * (up·x)| * |down column|); `rank` and `up`
    /// are scratch for rows x rank and rows x neurons floats.
    static func rankingScores(_ rule: SparsityRule, sidecar: SparsitySidecar, layer l: Int, activation: GatedActivation,
                              input: UnsafePointer<Float>, rows n: Int, matmul: MatMul, rank: UnsafeMutablePointer<Float>,
                              up: UnsafeMutablePointer<Float>, into scores: UnsafeMutablePointer<Float>) {
        let f = sidecar.header.feedForwardSize
        if rule == .predictor {
            let p = sidecar.predictors[l]
            matmul(p.down, input, tokens: n, into: rank)
            matmul(p.up, rank, tokens: n, into: scores)
            for r in 0..<n { add(p.bias, into: scores + r * f, count: f) }
        } else {
            let p = sidecar.subspaces[l]
            matmul(p.basis, input, tokens: n, into: rank)
            matmul(p.gate, rank, tokens: n, into: scores)
            matmul(p.up, rank, tokens: n, into: up)
            activation.apply(gate: scores, up: up, count: n * f)
            for r in 0..<n {
                for i in 0..<f { scores[r * f + i] = abs(scores[r * f + i]) * p.norms[i] }
            }
        }
    }

    /// How many of `f` neurons a ranking rule computes at sparsity `level`.
    static func keptNeurons(_ f: Int, atLevel level: Double) -> Int { f - Int((level * Double(f)).rounded()) }

    /// Per layer, the index into `levels` whose mean reaches `sparsity`: from all-dense, each
    /// step moves one layer to its next level, the one whose error grows least per unit of
    /// sparsity. A dense layer's first step goes straight to `firstUseful[layer]` (the first
    /// level worth running sparse; past the last level: never).
    static func allocate(errors: [[Double]], levels: [Double], sparsity: Double, firstUseful: [Int]) -> [Int] {
        var chosen = [Int](repeating: 0, count: errors.count)
        func mean() -> Double { chosen.reduce(0) { $0 + levels[$1] } / Double(max(chosen.count, 1)) }
        while mean() < sparsity - 1e-9 {
            var best: (layer: Int, level: Int, cost: Double)?
            for (l, curve) in errors.enumerated() {
                let now = chosen[l], next = now == 0 ? max(firstUseful[l], 1) : now + 1
                guard next < levels.count else { continue }
                let cost = (curve[next] - curve[now]) / (levels[next] - levels[now])
                if best.map({ cost < $0.cost }) ?? true { best = (l, next, cost) }
            }
            guard let best else { break }
            chosen[best.layer] = best.level
        }
        return chosen
    }
}

/// Weight bytes one decode step reads in a layer's feed-forward block: dense, and under a
/// rule that keeps a fraction of the neurons (whose down weights come from the column copy).
struct FeedForwardBytes {
    let gate, up, down, downColumns, predictor, subspace: Double

    init(model: TransformerModel, sidecar: SparsitySidecar, layer l: Int) {
        let layer = model.layers[l], f = model.config.feedForwardSize, vector = Double(f * 4)
        let p = sidecar.predictors[l], s = sidecar.subspaces[l]
        gate = Double(layer.gate.byteCount)
        up = Double(layer.up.byteCount)
        down = Double(layer.down.byteCount)
        downColumns = Double(ColumnMajorInt8Matrix.bytesRead(rows: model.config.embeddingSize, cols: f, columns: f))
        predictor = Double(p.down.byteCount + p.up.byteCount) + vector
        subspace = Double(s.basis.byteCount + s.gate.byteCount + s.up.byteCount) + vector
    }

    var dense: Double { gate + up + down }

    func sparse(_ rule: SparsityRule, kept k: Double, upKept u: Double = 1) -> Double {
        switch rule {
        case .predictor: k * (gate + up + downColumns) + predictor
        case .subspace: k * (gate + up + downColumns) + subspace
        case .cats: gate + k * (up + downColumns)
        case .teal: gate + u * up + k * downColumns
        }
    }
}
