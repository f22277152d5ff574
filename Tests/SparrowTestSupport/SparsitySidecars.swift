import SparrowEngine
import SparrowKernels

/// A contextual-sparsity sidecar for `model` whose thresholds select every neuron at every
/// level (both ranking rules' matrices zero), with the same error curve in every layer and
/// rule. With `head`, it carries those candidate-head preview factors (rank x embedding each).
public func selectEverythingSidecar(_ model: LanguageModel, sha256: String, levels: [Double] = [0, 0.5], errors: [Double] = [0, 0.1],
                                    head: (project: [Float], expand: [Float], rank: Int)? = nil) throws -> SparsitySidecar {
    let c = model.config, rank = 32
    func q8_0Bytes(rows: Int, cols: Int) -> Int { rows * TensorType.q8_0.byteCount(elements: cols)! }
    var blob: [UInt8] = []
    func reserve(_ bytes: Int) -> Int {
        defer { blob += [UInt8](repeating: 0, count: bytes) }
        return blob.count
    }
    func append(_ values: [Float]) -> Int {
        blob += [UInt8](repeating: 0, count: (64 - blob.count % 64) % 64)
        defer { values.withUnsafeBytes { blob += $0 } }
        return blob.count
    }
    let down = reserve(q8_0Bytes(rows: rank, cols: c.embeddingSize)), projected = reserve(q8_0Bytes(rows: c.feedForwardSize, cols: rank))
    let vector = reserve(c.feedForwardSize * 4)
    let selectAll = [Float](repeating: -1, count: levels.count)
    let layer = SparsitySidecar.Layer(gateThresholds: selectAll, activationThresholds: selectAll,
                                      errors: Dictionary(uniqueKeysWithValues: SparsityRule.allCases.map { ($0.rawValue, errors) }),
                                      predictorRecall: 1, predictorDown: down, predictorUp: projected, predictorBias: vector,
                                      subspaceBasis: down, subspaceGate: projected, subspaceUp: projected, downColumnNorms: vector)
    let preview = head.map { SparsitySidecar.Head(rank: $0.rank, project: append($0.project), expand: append($0.expand), capturedEnergy: []) }
    return try SparsitySidecar(header: .init(modelSHA256: sha256, embeddingSize: c.embeddingSize, feedForwardSize: c.feedForwardSize, rank: rank,
                                             subspaceRank: rank, levels: levels, layers: Array(repeating: layer, count: c.layerCount),
                                             calibration: .init(text: "none", tokens: 0, heldOutRows: 0, seconds: 0), head: preview),
                               blob: blob)
}
