import SparrowKernels

/// Contextual sparsity on the output projection's rows: per decode step a rank-r preview of
/// the logits picks about `candidates` likeliest tokens (a sampled threshold, see
/// `Selection.approximatelyLargest`), and only their rows of the head are read in full. Every
/// other token keeps its preview logit: the tokens that carry the softmax's mass are exact,
/// the tail is approximate. The head is the largest matrix a step
/// reads (a quarter to a third of the bytes on SmolLM2 and Qwen2.5-Coder-0.5B); the preview
/// reads about r/d of it.
final class CandidateHead: @unchecked Sendable {
    let rank: Int
    /// The mean number of exact logits per step.
    let candidates: Int
    /// Every how many preview logits one is sampled for the candidates' threshold.
    static let thresholdStride = 8
    private let output: WeightMatrix
    /// rank x d, f32 (in the sidecar): the hidden state into the preview's coordinates. Its
    /// columns' scales differ by orders of magnitude (it whitens outlier dimensions), too
    /// widely for int8 blocks.
    private let project: WeightMatrix
    /// vocab x rank, Q8_0: the head's rows in those coordinates.
    private let preview: WeightMatrix
    private let previewData: UnsafeMutableRawPointer
    private let projected, exact, scratch: UnsafeMutablePointer<Float>
    private let chosen: UnsafeMutablePointer<Int32>

    /// Weight bytes one step reads: the projection, the preview and the candidates' rows.
    var bytesPerToken: Int { project.byteCount + preview.byteCount + candidates * output.rowBytes }

    init(output: WeightMatrix, factors: HeadPreview, rank: Int, candidates: Int, pool: ThreadPool) throws {
        let vocab = output.rows, d = output.cols
        guard rank > 0, rank % 32 == 0, rank <= factors.rank else {
            throw SparsityError("head preview rank \(rank) must be a positive multiple of 32, at most the calibrated \(factors.rank)")
        }
        guard (1...vocab).contains(candidates) else { throw SparsityError("head candidates \(candidates) outside 1...\(vocab)") }
        self.output = output
        self.rank = rank
        self.candidates = candidates
        // Both factors' first `rank` rows are the rank-r preview (rows go by captured energy).
        project = try WeightMatrix(type: .f32, rows: rank, cols: d, data: factors.project)
        let bytes = SparsityCalibration.quantizedProjection(output, onto: factors.expand, rank: rank, pool: pool)
        let previewData = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
        bytes.withUnsafeBytes { previewData.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        self.previewData = previewData
        preview = try WeightMatrix(type: .q8_0, rows: vocab, cols: rank, data: previewData)
        projected = .allocate(capacity: rank)
        exact = .allocate(capacity: vocab)
        scratch = .allocate(capacity: vocab / Self.thresholdStride + 1)
        chosen = .allocate(capacity: vocab)
    }

    deinit {
        previewData.deallocate()
        for p in [projected, exact, scratch] { p.deallocate() }
        chosen.deallocate()
    }

    func logits(input: UnsafePointer<Float>, into logits: UnsafeMutablePointer<Float>, matmul: MatMul) {
        let vocab = output.rows
        guard candidates < vocab else { return matmul(output, input, tokens: 1, into: logits) }
        matmul(project, input, tokens: 1, into: projected)
        matmul(preview, projected, tokens: 1, into: logits)
        let count = Selection.approximatelyLargest(candidates, of: logits, count: vocab, stride: Self.thresholdStride, scratch: scratch,
                                                   into: chosen)
        matmul.selectedRows(output, input, rows: UnsafeBufferPointer(start: chosen, count: count), into: exact)
        for i in 0..<count { logits[Int(chosen[i])] = exact[i] }
    }
}

/// A candidate head's calibrated factors, in a sidecar: the preview of W h is (W Eᵀ)(P h), with
/// P (`project`) and E (`expand`) rank x d, f32, rows by descending captured energy.
struct HeadPreview {
    let rank: Int
    let project, expand: UnsafePointer<Float>

    /// The rank-r map A minimising E‖(W − A) h‖² over the head's calibration inputs h, whose
    /// second moments are Σ = L Lᵀ: A = W L V Vᵀ L⁻¹ for V the top eigenvectors of
    /// Lᵀ WᵀW L. Returns P = Vᵀ L⁻¹ and E = Vᵀ Lᵀ (A = (W Eᵀ) P), and per rank 32, 64, ...
    /// the fraction of E‖W h‖² the preview keeps. The head's own singular directions (Σ = I)
    /// miss the directions the hidden states' large outlier components live in: measured on
    /// Qwen2.5-Coder-0.5B, rank 832 of 896 that way still cost 5% perplexity.
    static func factors(output: WeightMatrix, secondMoments: [Double], rank r: Int,
                        pool: ThreadPool) -> (project: [Float], expand: [Float], captured: [Double]) {
        let d = output.cols, vocab = output.rows, chunk = 4096
        var gram = [Float](repeating: 0, count: d * d)
        var rows = [Float](repeating: 0, count: chunk * d)
        for start in stride(from: 0, to: vocab, by: chunk) {
            let n = min(chunk, vocab - start)
            rows.withUnsafeMutableBufferPointer { b in for i in 0..<n { output.dequantizeRow(start + i, into: b.baseAddress! + i * d) } }
            FloatGEMM.multiply(m: d, n: d, k: n, a: rows, transposeA: true, b: rows, into: &gram, accumulate: true, pool: pool)
        }
        // Cholesky in Double, with a little ridge: Σ is near singular along unused directions.
        var ridge = 0.0
        for i in 0..<d { ridge += secondMoments[i * d + i] }
        ridge *= 1e-6 / Double(d)
        var l = [Double](repeating: 0, count: d * d)
        for j in 0..<d {
            var diagonal = secondMoments[j * d + j] + ridge
            for k in 0..<j { diagonal -= l[j * d + k] * l[j * d + k] }
            let pivot = max(diagonal, ridge).squareRoot()
            l[j * d + j] = pivot
            for i in (j + 1)..<d {
                var sum = secondMoments[i * d + j]
                for k in 0..<j { sum -= l[i * d + k] * l[j * d + k] }
                l[i * d + j] = sum / pivot
            }
        }
        let lower = l.map { Float($0) }
        var product = [Float](repeating: 0, count: d * d), whitened = product
        FloatGEMM.multiply(m: d, n: d, k: d, a: gram, b: lower, into: &product, pool: pool)
        FloatGEMM.multiply(m: d, n: d, k: d, a: lower, transposeA: true, b: product, into: &whitened, pool: pool)
        var total = 0.0
        for i in 0..<d { total += Double(whitened[i * d + i]) }
        let (v, values) = PrincipalSubspace.dominantEigenvectors(of: whitened, width: d, rank: r, pool: pool)
        var project = [Float](repeating: 0, count: r * d), expand = project
        for i in 0..<r {
            // expand row i = (L v_i)ᵀ; project row i = u with Lᵀ u = v_i (back substitution).
            for a in 0..<d {
                var sum = 0.0
                for k in 0...a { sum += l[a * d + k] * Double(v[i * d + k]) }
                expand[i * d + a] = Float(sum)
            }
            var u = [Double](repeating: 0, count: d)
            for a in stride(from: d - 1, through: 0, by: -1) {
                var sum = Double(v[i * d + a])
                for k in (a + 1)..<d { sum -= l[k * d + a] * u[k] }
                u[a] = sum / l[a * d + a]
            }
            for a in 0..<d { project[i * d + a] = Float(u[a]) }
        }
        let captured = stride(from: 32, through: r, by: 32).map { values.prefix($0).reduce(0, +) / max(total, .leastNormalMagnitude) }
        return (project, expand, captured)
    }
}
