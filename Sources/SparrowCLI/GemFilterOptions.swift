import ArgumentParser
import SparrowEngine

extension GemFilter.Scoring: ExpressibleByArgument {}

/// The GemFilter flags (see `GemFilter`).
struct GemFilterOptions: ParsableArguments {
    @Flag(help: "Prefill only the prompt tokens an early layer selects (GemFilter).")
    var gemfilter = false

    @Option(name: .customLong("gemfilter-layer"), help: "The layer whose attention selects tokens (default: the model's calibrated layer).")
    var layer: Int?

    @Option(name: .customLong("gemfilter-keep"), help: "Prompt tokens to keep.")
    var keep = 1024

    @Option(name: .customLong("gemfilter-keep-edges"), help: "Also keep the first token and the last W tokens (0: off).")
    var trailingWindow = 0

    @Option(name: .customLong("gemfilter-scoring"), help: "How the layer scores tokens: raw (the paper's dot products) or attention (per-head softmax).")
    var scoring = GemFilter.Scoring.raw

    @Option(name: .customLong("gemfilter-window"), help: "How many of the prompt's last tokens score it (1: the paper's last token).")
    var queryWindow = 1

    func validate() throws {
        guard gemfilter else {
            if layer != nil { throw ValidationError("--gemfilter-layer needs --gemfilter") }
            return
        }
        if let layer, layer < 0 { throw ValidationError("--gemfilter-layer must be 0 or more") }
        if keep < 1 { throw ValidationError("--gemfilter-keep must be at least 1") }
        if trailingWindow < 0 || trailingWindow >= keep { throw ValidationError("--gemfilter-keep-edges must be in 0..<--gemfilter-keep") }
        if !(1...512).contains(queryWindow) { throw ValidationError("--gemfilter-window must be within 1...512") }
    }

    /// The filter to apply: the given layer (checked against the model's depth) or the one
    /// `sparrow calibrate gemfilter` chose for this model.
    func filter(for model: LanguageModel) throws -> GemFilter? {
        guard gemfilter else { return nil }
        let chosen: Int
        if let layer {
            chosen = layer
        } else if let calibrated = GemFilterCalibration.layer(for: try ModelStore().sha256(ofModelAt: model.file.path),
                                                              scoring: scoring, queryWindow: queryWindow) {
            chosen = calibrated
        } else {
            throw ValidationError("no calibrated GemFilter layer for this model and scoring: run `sparrow calibrate gemfilter -m MODEL --haystack FILE "
                + "--gemfilter-scoring \(scoring.rawValue) --gemfilter-window \(queryWindow)` or give --gemfilter-layer")
        }
        guard chosen < model.config.layerCount else {
            throw ValidationError("--gemfilter-layer \(chosen) is past the model's last layer \(model.config.layerCount - 1)")
        }
        return GemFilter(layer: chosen, keep: keep, trailingWindow: trailingWindow, scoring: scoring, queryWindow: queryWindow)
    }
}
