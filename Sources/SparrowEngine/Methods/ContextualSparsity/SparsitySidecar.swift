import Foundation
import SparrowKernels

/// What `sparrow calibrate sparsity` learns about one model, loaded with `--sparsity FILE`:
/// per layer a low-rank neuron predictor (Q8_0), the thresholds of the training-free rules at
/// each sparsity level, and each rule's measured error per level, from which budgets under a
/// global sparsity are allocated.
///
/// File: the magic "SPRWSPAR", a little-endian UInt32 header length, the JSON header, then the
/// predictors' bytes (offsets in the header count from the first byte after the header).
public final class SparsitySidecar: @unchecked Sendable {
    public struct Header: Codable, Sendable {
        public var modelSHA256: String
        public var embeddingSize, feedForwardSize, rank, subspaceRank: Int
        /// The sparsity grid every per-level list follows (fractions of neurons skipped).
        public var levels: [Double]
        public var layers: [Layer]
        public var calibration: Calibration
        /// The candidate head's preview factors; nil in sidecars from before it.
        public var head: Head? = nil

        public init(modelSHA256: String, embeddingSize: Int, feedForwardSize: Int, rank: Int, subspaceRank: Int, levels: [Double],
                    layers: [Layer], calibration: Calibration, head: Head? = nil) {
            (self.modelSHA256, self.embeddingSize, self.feedForwardSize, self.rank, self.subspaceRank) =
                (modelSHA256, embeddingSize, feedForwardSize, rank, subspaceRank)
            (self.levels, self.layers, self.calibration, self.head) = (levels, layers, calibration, head)
        }
    }

    public struct Head: Codable, Sendable {
        /// Rows of each factor: the largest preview rank.
        public var rank: Int
        /// Byte offsets of the factors P and E (rank x embedding, f32; see `HeadPreview`).
        public var project, expand: Int
        /// At ranks 32, 64, ...: the fraction of the logits' energy E‖W h‖² the preview keeps.
        public var capturedEnergy: [Double]

        public init(rank: Int, project: Int, expand: Int, capturedEnergy: [Double]) {
            (self.rank, self.project, self.expand, self.capturedEnergy) = (rank, project, expand, capturedEnergy)
        }
    }

    public struct Layer: Codable, Sendable {
        /// CATS: neurons whose |act(gate)| is at most this are skipped, per level.
        public var gateThresholds: [Float]
        /// TEAL-style on the down projection's input: |act(gate) * up| at most this, per level.
        public var activationThresholds: [Float]
        /// Per rule and level, the energy the skipped neurons would have added, relative to the
        /// residual stream's (mean over held-out rows of sum (h_i * |down column i|)^2 / |residual|^2).
        public var errors: [String: [Double]]
        /// The predictor's held-out recall of the important neurons.
        public var predictorRecall: Double
        /// Byte offsets of the predictor: down (rank x embedding, Q8_0), up (neurons x rank,
        /// Q8_0), bias (neurons, f32).
        public var predictorDown, predictorUp, predictorBias: Int
        /// Byte offsets of the subspace rule: the inputs' principal basis (subspaceRank x
        /// embedding, Q8_0), gate and up restricted to it (neurons x subspaceRank, Q8_0), and
        /// each neuron's down column norm (neurons, f32).
        public var subspaceBasis, subspaceGate, subspaceUp, downColumnNorms: Int

        public init(gateThresholds: [Float], activationThresholds: [Float], errors: [String: [Double]], predictorRecall: Double,
                    predictorDown: Int, predictorUp: Int, predictorBias: Int, subspaceBasis: Int, subspaceGate: Int, subspaceUp: Int,
                    downColumnNorms: Int) {
            (self.gateThresholds, self.activationThresholds, self.errors, self.predictorRecall) =
                (gateThresholds, activationThresholds, errors, predictorRecall)
            (self.predictorDown, self.predictorUp, self.predictorBias) = (predictorDown, predictorUp, predictorBias)
            (self.subspaceBasis, self.subspaceGate, self.subspaceUp, self.downColumnNorms) = (subspaceBasis, subspaceGate, subspaceUp, downColumnNorms)
        }
    }

    public struct Calibration: Codable, Sendable {
        public var text: String
        public var tokens: Int
        public var heldOutRows: Int
        public var seconds: Double

        public init(text: String, tokens: Int, heldOutRows: Int, seconds: Double) {
            (self.text, self.tokens, self.heldOutRows, self.seconds) = (text, tokens, heldOutRows, seconds)
        }
    }

    static let magic = Array("SPRWSPAR".utf8)

    public let header: Header
    /// The predictor bytes, 64-byte aligned (Q8_0 matrices point into them).
    private let blob: UnsafeMutableRawPointer
    private let blobCount: Int

    /// Layer by layer, the predictor (logits = up · (down · x) + bias) and the subspace rule
    /// (scores = |act(gate · basis · x) * (up · basis · x)| * norms), pointing into the blob.
    struct Predictor { let down, up: WeightMatrix; let bias: UnsafePointer<Float> }
    struct Subspace { let basis, gate, up: WeightMatrix; let norms: UnsafePointer<Float> }
    let predictors: [Predictor]
    let subspaces: [Subspace]
    let headPreview: HeadPreview?

    /// Throws when the header's shapes cannot describe Q8_0 matrices.
    public init(header: Header, blob bytes: [UInt8]) throws {
        self.header = header
        blobCount = bytes.count
        let blob = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { blob.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        self.blob = blob
        let h = header
        do {
            predictors = try h.layers.map { layer in
                Predictor(down: try WeightMatrix(type: .q8_0, rows: h.rank, cols: h.embeddingSize, data: blob + layer.predictorDown),
                          up: try WeightMatrix(type: .q8_0, rows: h.feedForwardSize, cols: h.rank, data: blob + layer.predictorUp),
                          bias: UnsafePointer((blob + layer.predictorBias).assumingMemoryBound(to: Float.self)))
            }
            subspaces = try h.layers.map { layer in
                Subspace(basis: try WeightMatrix(type: .q8_0, rows: h.subspaceRank, cols: h.embeddingSize, data: blob + layer.subspaceBasis),
                         gate: try WeightMatrix(type: .q8_0, rows: h.feedForwardSize, cols: h.subspaceRank, data: blob + layer.subspaceGate),
                         up: try WeightMatrix(type: .q8_0, rows: h.feedForwardSize, cols: h.subspaceRank, data: blob + layer.subspaceUp),
                         norms: UnsafePointer((blob + layer.downColumnNorms).assumingMemoryBound(to: Float.self)))
            }
        } catch {
            blob.deallocate()
            throw SparsityError("sparsity sidecar shapes are unusable: \(error)")
        }
        headPreview = h.head.map { head in
            HeadPreview(rank: head.rank, project: UnsafePointer((blob + head.project).assumingMemoryBound(to: Float.self)),
                        expand: UnsafePointer((blob + head.expand).assumingMemoryBound(to: Float.self)))
        }
    }

    deinit { blob.deallocate() }

    /// Reads a sidecar, refusing one made for another model (`modelSHA256`) or shape.
    public convenience init(path: String, modelSHA256: String, config: ModelConfig) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SparsityError("cannot read sparsity sidecar \(path) (make one with `sparrow calibrate sparsity -m MODEL --text FILE`)")
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.magic else {
            throw SparsityError("\(path) is not a Sparrow sparsity sidecar (made by `sparrow calibrate sparsity`)")
        }
        let length = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + length <= bytes.count else { throw SparsityError("sparsity sidecar \(path) is truncated") }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[12..<(12 + length)]))
        } catch {
            throw SparsityError("sparsity sidecar \(path) has an unreadable header: \(error)")
        }
        guard header.modelSHA256 == modelSHA256 else {
            throw SparsityError("sparsity sidecar \(path) was calibrated for another model (sha256 \(header.modelSHA256), this one is \(modelSHA256))")
        }
        guard header.embeddingSize == config.embeddingSize, header.feedForwardSize == config.feedForwardSize,
              header.layers.count == config.layerCount else {
            throw SparsityError("sparsity sidecar \(path) does not match the model's shape")
        }
        // Budgets start from level 0 (dense) and step up through the grid.
        guard header.levels.first == 0, zip(header.levels, header.levels.dropFirst()).allSatisfy({ $0 < $1 }), header.levels.last! < 1 else {
            throw SparsityError("sparsity sidecar \(path) has levels \(header.levels); they must rise from 0 and stay below 1")
        }
        try self.init(header: header, blob: Array(bytes[(12 + length)...]))
        if let head = header.head {
            let factorBytes = head.rank * header.embeddingSize * 4
            guard head.rank > 0, [head.project, head.expand].allSatisfy({ $0 >= 0 && $0 + factorBytes <= blobCount }) else {
                throw SparsityError("sparsity sidecar \(path) is truncated or inconsistent (head preview)")
            }
        }
        for layer in header.layers {
            let ends = [layer.predictorDown + header.rank * q8_0RowBytes(cols: header.embeddingSize),
                        layer.predictorUp + header.feedForwardSize * q8_0RowBytes(cols: header.rank),
                        layer.predictorBias + header.feedForwardSize * 4,
                        layer.subspaceBasis + header.subspaceRank * q8_0RowBytes(cols: header.embeddingSize),
                        layer.subspaceGate + header.feedForwardSize * q8_0RowBytes(cols: header.subspaceRank),
                        layer.subspaceUp + header.feedForwardSize * q8_0RowBytes(cols: header.subspaceRank),
                        layer.downColumnNorms + header.feedForwardSize * 4]
            guard ends.allSatisfy({ $0 <= blobCount }), SparsityRule.allCases.allSatisfy({ layer.errors[$0.rawValue]?.count == header.levels.count }),
                  layer.gateThresholds.count == header.levels.count, layer.activationThresholds.count == header.levels.count else {
                throw SparsityError("sparsity sidecar \(path) is truncated or inconsistent")
            }
        }
    }

    public func write(to path: String) throws {
        var bytes = Self.magic
        let json = try JSONEncoder().encode(header)
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { bytes += $0 }
        bytes += json
        bytes += UnsafeRawBufferPointer(start: blob, count: blobCount)
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// `<models directory>/calibration/<sha256>.sparsity`: where calibration saves by default.
    public static func defaultPath(for modelSHA256: String, store: ModelStore = ModelStore()) -> String {
        store.directory.appendingPathComponent("calibration/\(modelSHA256).sparsity").path
    }
}

func q8_0RowBytes(cols: Int) -> Int { cols / 32 * 34 }

/// A sparsity sidecar or setting that cannot be used, with what is wrong.
public struct SparsityError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
