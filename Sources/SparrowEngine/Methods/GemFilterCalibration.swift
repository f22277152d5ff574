import Foundation

/// The filter layer GemFilter uses for one model, chosen by measurement rather than guessed:
/// the smallest layer whose needle retrieval (hits over a grid of lengths and depths) matches
/// full attention's on the same prompts, and which keeps at least `minRetention` of the
/// needle's tokens in every prompt. The retention margin is what makes the choice hold at
/// longer prompts than the calibration's: a layer that keeps only a few needle tokens at 8k
/// tends to keep none at 16k.
public struct GemFilterCalibration: Codable, Sendable {
    /// One candidate layer over the calibration prompts.
    public struct LayerTrial: Codable, Sendable {
        public let layer: Int
        /// Per prompt (lengths × depths), the fraction of the needle's tokens kept.
        public let needleRetention: [Double]
        /// Replies containing the answer; nil when the layer was ruled out by retention alone.
        public let hits: Int?
    }

    public let modelSHA256: String
    public let scoring: String
    public let queryWindow: Int
    public let layer: Int
    public let keep: Int
    public let lengths: [Int]
    public let depths: [Int]
    public let minRetention: Double
    public let fullAttentionHits: Int
    /// Layers 0, 1, ... up to the chosen one.
    public let trials: [LayerTrial]

    /// Results of `sparrow calibrate gemfilter` for the catalog models (by SHA-256), so a fresh
    /// install has them; a calibration saved on this machine takes precedence.
    static let builtIn: [String: Int] = [
        // qwen2.5-coder-0.5b: layers 0-2 1/5, layer 3 4/5, layer 4 5/5 (at 8192 tokens, keep
        // 1024, depths 0/50/100, layer 4 again: 0, 0, 1, 2, 3 of 3 for layers 0-4).
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32": 4,
        // smollm2-135m: 1-3/5 up to layer 20, layer 21 5/5.
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53": 21,
    ]

    /// One full-attention pass per prompt gives both the reference reply and every layer's
    /// selection (each layer's keys are in the cache; the last token's query is recomputed up
    /// to each layer); then layers are tried upwards, replying from their kept tokens only.
    public static func run(_ evaluation: NeedleEvaluation, modelSHA256: String, lengths: [Int], depths: [Int], keep: Int,
                           scoring: GemFilter.Scoring = .raw, queryWindow: Int = 1, minRetention: Double, log: (String) -> Void = { _ in }) throws -> GemFilterCalibration {
        let model = evaluation.model.transformer, layers = model.config.layerCount
        var prompts: [(tokens: [Int], keptByLayer: [[Int]], retention: [Double])] = []
        var fullHits = 0
        for length in lengths {
            for depth in depths {
                let prompt = try evaluation.haystack.prompt(length: length, depthPercent: depth)
                let session = Session(model: model, contextSize: length + evaluation.replyTokens + 1, pool: evaluation.pool)
                try session.evaluate(Array(prompt.tokens.dropLast()))
                var keptByLayer: [[Int]] = []
                for layer in 0..<layers {
                    let filter = GemFilter(layer: layer, keep: keep, scoring: scoring, queryWindow: queryWindow)
                    let window = filter.queryTokens(of: prompt.tokens.count)
                    session.truncate(to: prompt.tokens.count - window)
                    let (keys, queries) = try session.keysAndQueries(ofNext: Array(prompt.tokens.suffix(window)), atLayer: layer)
                    keptByLayer.append(filter.keptIndices(keys: keys, queries: queries, config: model.config))
                }
                let retention = keptByLayer.map { Double(prompt.needleKept(by: $0)) / Double(prompt.needleCount) }
                let hit = evaluation.isHit(try evaluation.reply(to: prompt.tokens, in: session))
                if hit { fullHits += 1 }
                log("length \(length) depth \(depth)%: full attention \(hit ? "hit" : "miss"); needle tokens kept by layer: "
                    + keptByLayer.map { "\(prompt.needleKept(by: $0))" }.joined(separator: " ") + " of \(prompt.needleCount)")
                prompts.append((prompt.tokens, keptByLayer, retention))
            }
        }
        var trials: [LayerTrial] = []
        for layer in 0..<layers {
            let retention = prompts.map { $0.retention[layer] }
            var hits: Int?
            if retention.allSatisfy({ $0 >= minRetention }) {
                hits = try prompts.filter { prompt in
                    let kept = prompt.keptByLayer[layer].map { prompt.tokens[$0] }
                    let session = Session(model: model, contextSize: kept.count + evaluation.replyTokens + 1, pool: evaluation.pool)
                    return evaluation.isHit(try evaluation.reply(to: kept, in: session))
                }.count
            }
            trials.append(LayerTrial(layer: layer, needleRetention: retention, hits: hits))
            log("layer \(layer): least needle retention \(String(format: "%.2f", retention.min() ?? 0)), "
                + (hits.map { "\($0)/\(prompts.count) hits" } ?? "not tried"))
            if let hits, hits >= fullHits { break }
        }
        return GemFilterCalibration(modelSHA256: modelSHA256, scoring: scoring.rawValue, queryWindow: queryWindow, layer: trials.count - 1,
                                    keep: keep, lengths: lengths, depths: depths, minRetention: minRetention, fullAttentionHits: fullHits,
                                    trials: trials)
    }

    /// Calibrations are per model and per way of scoring: "<sha256>/raw-1" for the paper's.
    static func key(_ modelSHA256: String, scoring: GemFilter.Scoring, queryWindow: Int) -> String {
        "\(modelSHA256)/\(scoring.rawValue)-\(queryWindow)"
    }

    /// `<models directory>/calibration/<sha256>.gemfilter-<scoring>-<window>.json`.
    public static func file(for modelSHA256: String, scoring: GemFilter.Scoring, queryWindow: Int, store: ModelStore = ModelStore()) -> URL {
        store.directory.appendingPathComponent("calibration/\(modelSHA256).gemfilter-\(scoring.rawValue)-\(queryWindow).json")
    }

    public var file: URL { Self.file(for: modelSHA256, scoring: GemFilter.Scoring(rawValue: scoring) ?? .raw, queryWindow: queryWindow) }

    public func save(store: ModelStore = ModelStore()) throws {
        let url = Self.file(for: modelSHA256, scoring: GemFilter.Scoring(rawValue: scoring) ?? .raw, queryWindow: queryWindow, store: store)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The calibrated layer for a model and way of scoring: saved here, else built in, else nil.
    public static func layer(for modelSHA256: String, scoring: GemFilter.Scoring, queryWindow: Int, store: ModelStore = ModelStore()) -> Int? {
        if let data = try? Data(contentsOf: file(for: modelSHA256, scoring: scoring, queryWindow: queryWindow, store: store)),
           let saved = try? JSONDecoder().decode(GemFilterCalibration.self, from: data) {
            return saved.layer
        }
        return builtIn[key(modelSHA256, scoring: scoring, queryWindow: queryWindow)]
    }
}
