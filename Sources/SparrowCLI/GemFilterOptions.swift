import ArgumentParser
import SparrowEngine

extension GemFilter.Scoring: ExpressibleByArgument {}

/// How GemFilter selects tokens, apart from its layer: shared by the methods' flags and by
/// `calibrate gemfilter`, which chooses the layer for exactly these settings.
struct GemFilterSelectionOptions: ParsableArguments {
    @Option(name: .customLong("gemfilter-keep"), parsing: .unconditional, help: "Prompt tokens to keep.")
    var keep = 1024

    @Option(name: .customLong("gemfilter-keep-edges"), parsing: .unconditional, help: "Also keep the first token and the last W tokens (0: off).")
    var trailingWindow = 0

    @Option(name: .customLong("gemfilter-scoring"), help: "How the layer scores tokens: raw (the paper's dot products) or attention (per-head softmax).")
    var scoring = GemFilter.Scoring.raw

    @Option(name: .customLong("gemfilter-window"), parsing: .unconditional, help: "How many of the prompt's last tokens score it (1: the paper's last token).")
    var queryWindow = 1

    @Option(name: .customLong("gemfilter-attention-window"), parsing: .unconditional, help: "Let the filter pass attend only to this many latest tokens (default: all, as the paper).")
    var attentionWindow: Int?

    func validate() throws {
        if keep < 1 { throw ValidationError("--gemfilter-keep must be at least 1") }
        if trailingWindow < 0 || trailingWindow >= keep { throw ValidationError("--gemfilter-keep-edges must be in 0..<--gemfilter-keep") }
        if !(1...512).contains(queryWindow) { throw ValidationError("--gemfilter-window must be within 1...512") }
        if let attentionWindow, attentionWindow < 1 { throw ValidationError("--gemfilter-attention-window must be at least 1") }
    }

    func filter(layer: Int) -> GemFilter {
        GemFilter(layer: layer, keep: keep, trailingWindow: trailingWindow, scoring: scoring, queryWindow: queryWindow, attentionWindow: attentionWindow)
    }
}

/// The GemFilter flags (see `GemFilter`).
struct GemFilterOptions: ParsableArguments {
    @Flag(help: "Prefill only the prompt tokens an early layer selects (GemFilter).")
    var gemfilter = false

    @Option(name: .customLong("gemfilter-layer"), parsing: .unconditional, help: "The layer whose attention selects tokens (default: the model's calibrated layer).")
    var layer: Int?

    @OptionGroup var selection: GemFilterSelectionOptions

    var keep: Int { selection.keep }

    func validate() throws {
        guard gemfilter else {
            if layer != nil { throw ValidationError("--gemfilter-layer needs --gemfilter") }
            return
        }
        if let layer, layer < 0 { throw ValidationError("--gemfilter-layer must be 0 or more") }
    }

    /// The filter to apply: the given layer or the one `sparrow calibrate gemfilter` chose
    /// for this model and these selection settings.
    func filter(for model: LanguageModel) throws -> GemFilter? {
        guard gemfilter else { return nil }
        return try selection.filter(layer: 0).placed(in: model, layer: layer, modelSHA256: try ModelStore().sha256(ofModelAt: model.file.path))
    }
}
