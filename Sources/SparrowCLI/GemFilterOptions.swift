import ArgumentParser
import SparrowEngine

/// The GemFilter flags (see `GemFilter`).
struct GemFilterOptions: ParsableArguments {
    @Flag(help: "Prefill only the prompt tokens an early layer selects (GemFilter).")
    var gemfilter = false

    @Option(name: .customLong("gemfilter-layer"), help: "The layer whose attention selects tokens (required with --gemfilter for now).")
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
        guard let layer else {
            throw ValidationError("--gemfilter needs --gemfilter-layer R (no calibrated default layer yet)")
        }
        if layer < 0 { throw ValidationError("--gemfilter-layer must be 0 or more") }
        if keep < 1 { throw ValidationError("--gemfilter-keep must be at least 1") }
        if trailingWindow < 0 || trailingWindow >= keep { throw ValidationError("--gemfilter-keep-edges must be in 0..<--gemfilter-keep") }
    }

    /// The filter to apply, checked against the model's depth.
    func filter(for model: LanguageModel) throws -> GemFilter? {
        guard gemfilter, let layer else { return nil }
        guard layer < model.config.layerCount else {
            throw ValidationError("--gemfilter-layer \(layer) is past the model's last layer \(model.config.layerCount - 1)")
        }
        return GemFilter(layer: layer, keep: keep, trailingWindow: trailingWindow)
    }
}
