import ArgumentParser
import SparrowEngine

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

    func validate() throws {
        guard gemfilter else {
            if layer != nil { throw ValidationError("--gemfilter-layer needs --gemfilter") }
            return
        }
        if let layer, layer < 0 { throw ValidationError("--gemfilter-layer must be 0 or more") }
        if keep < 1 { throw ValidationError("--gemfilter-keep must be at least 1") }
        if trailingWindow < 0 || trailingWindow >= keep { throw ValidationError("--gemfilter-keep-edges must be in 0..<--gemfilter-keep") }
    }

    /// The filter to apply: the given layer (checked against the model's depth) or the one
    /// `sparrow calibrate gemfilter` chose for this model.
    func filter(for model: LanguageModel) throws -> GemFilter? {
        guard gemfilter else { return nil }
        let chosen: Int
        if let layer {
            chosen = layer
        } else if let calibrated = GemFilterCalibration.layer(for: try ModelStore().sha256(ofModelAt: model.file.path)) {
            chosen = calibrated
        } else {
            throw ValidationError("no calibrated GemFilter layer for this model: run `sparrow calibrate gemfilter -m MODEL --haystack FILE` or give --gemfilter-layer")
        }
        guard chosen < model.config.layerCount else {
            throw ValidationError("--gemfilter-layer \(chosen) is past the model's last layer \(model.config.layerCount - 1)")
        }
        return GemFilter(layer: chosen, keep: keep, trailingWindow: trailingWindow)
    }
}
