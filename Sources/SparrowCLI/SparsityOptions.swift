import ArgumentParser
import SparrowEngine
import SparrowKernels

extension SparsityRule: ExpressibleByArgument {}

/// The contextual sparsity flags (see `ContextualSparsity`): decode steps compute only the
/// feed-forward neurons a rule selects.
struct SparsityOptions: ParsableArguments {
    @Option(help: "A sidecar from `sparrow calibrate sparsity` (\"default\": the one it saved for this model); turns contextual sparsity on.")
    var sparsity: String?

    // The defaults are the frontier's best trade on Qwen2.5-Coder-0.5B (README): TEAL keeps
    // quality where the predictors lose it.
    @Option(name: .customLong("sparsity-rule"),
            help: "How neurons are chosen: predictor (Deja Vu), subspace (principal-subspace estimate), cats (gate threshold) or teal (down-input threshold).")
    var rule = SparsityRule.teal

    @Option(name: .customLong("sparsity-level"), help: "The fraction of feed-forward neurons skipped, averaged over layers.")
    var level = 0.7

    @Option(name: .customLong("sparsity-head"), help: "The fraction of the output projection's inputs skipped (0: dense head).")
    var headLevel = 0.0

    func validate() throws {
        if !(0..<1).contains(level) { throw ValidationError("--sparsity-level must be within 0..<1") }
        if !(0..<1).contains(headLevel) { throw ValidationError("--sparsity-head must be within 0..<1") }
    }

    /// The sidecar for `model`, or nil without --sparsity.
    func sidecar(for model: LanguageModel) throws -> SparsitySidecar? {
        guard let sparsity else { return nil }
        let sha256 = try ModelStore().sha256(ofModelAt: model.file.path)
        let path = sparsity == "default" ? SparsitySidecar.defaultPath(for: sha256) : sparsity
        return try SparsitySidecar(path: path, modelSHA256: sha256, config: model.config)
    }

    /// Contextual sparsity at `level` under `rule` (defaults: the flags), or nil without --sparsity.
    func method(for model: LanguageModel, pool: ThreadPool, rule: SparsityRule? = nil, level: Double? = nil) throws -> ContextualSparsity? {
        guard let sidecar = try sidecar(for: model) else { return nil }
        return try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: rule ?? self.rule, sparsity: level ?? self.level,
                                      headSparsity: headLevel, pool: pool)
    }
}
