import Foundation

/// The filter layer GemFilter uses for one model, chosen by measurement rather than guessed:
/// the smallest layer whose needle retrieval (hits over a grid of lengths and depths) matches
/// full attention's on the same prompts.
public struct GemFilterCalibration: Codable, Sendable {
    public let modelSHA256: String
    public let layer: Int
    public let keep: Int
    public let lengths: [Int]
    public let depths: [Int]
    public let fullAttentionHits: Int
    /// Hits with GemFilter at layers 0, 1, ... up to the chosen one.
    public let hitsByLayer: [Int]

    public init(modelSHA256: String, layer: Int, keep: Int, lengths: [Int], depths: [Int], fullAttentionHits: Int, hitsByLayer: [Int]) {
        self.modelSHA256 = modelSHA256
        self.layer = layer
        self.keep = keep
        self.lengths = lengths
        self.depths = depths
        self.fullAttentionHits = fullAttentionHits
        self.hitsByLayer = hitsByLayer
    }

    /// Results of `sparrow calibrate gemfilter` for the catalog models (by SHA-256), so a fresh
    /// install has them; a calibration saved on this machine takes precedence.
    /// Measured 2026-11-24 on 2048-token Austen prompts, keep 512, depths 0/25/50/75/100
    /// (full attention 5/5 for both).
    static let builtIn: [String: Int] = [
        // qwen2.5-coder-0.5b: layers 0-2 1/5, layer 3 4/5, layer 4 5/5 (at 8192 tokens, keep
        // 1024, depths 0/50/100, layer 4 again: 0, 0, 1, 2, 3 of 3 for layers 0-4).
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32": 4,
        // smollm2-135m: 1-3/5 up to layer 20, layer 21 5/5.
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53": 21,
    ]

    /// Sweeps layers upwards from 0 and stops at the first that retrieves as well as full
    /// attention (the last layer when none does).
    public static func run(_ evaluation: NeedleEvaluation, modelSHA256: String, lengths: [Int], depths: [Int], keep: Int,
                           log: (String) -> Void = { _ in }) throws -> GemFilterCalibration {
        func hits(_ filter: (any PromptFilter)?) throws -> Int {
            try evaluation.grid(lengths: lengths, depths: depths, filter: filter).filter(\.hit).count
        }
        let cells = lengths.count * depths.count
        let full = try hits(nil)
        log("full attention: \(full)/\(cells)")
        var byLayer: [Int] = []
        let layers = evaluation.model.config.layerCount
        for layer in 0..<layers {
            byLayer.append(try hits(GemFilter(layer: layer, keep: keep)))
            log("layer \(layer): \(byLayer.last!)/\(cells)")
            if byLayer.last! >= full { break }
        }
        return GemFilterCalibration(modelSHA256: modelSHA256, layer: byLayer.count - 1, keep: keep, lengths: lengths, depths: depths,
                                    fullAttentionHits: full, hitsByLayer: byLayer)
    }

    /// `<models directory>/calibration/<sha256>.gemfilter.json`.
    public static func file(for modelSHA256: String, store: ModelStore = ModelStore()) -> URL {
        store.directory.appendingPathComponent("calibration/\(modelSHA256).gemfilter.json")
    }

    public func save(store: ModelStore = ModelStore()) throws {
        let url = Self.file(for: modelSHA256, store: store)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The calibrated layer for a model: saved here, else built in, else nil.
    public static func layer(for modelSHA256: String, store: ModelStore = ModelStore()) -> Int? {
        if let data = try? Data(contentsOf: file(for: modelSHA256, store: store)),
           let saved = try? JSONDecoder().decode(GemFilterCalibration.self, from: data) {
            return saved.layer
        }
        return builtIn[modelSHA256]
    }
}
