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

    @Option(name: .customLong("sparsity-level"), parsing: .unconditional, help: "The fraction of feed-forward neurons skipped, averaged over layers.")
    var level = 0.7

    @Option(name: .customLong("sparsity-head-candidates"),
            help: "Tokens whose logits a step computes exactly, picked by a low-rank preview of the head (0: dense head).")
    var headCandidates = 0

    @Option(name: .customLong("sparsity-head-rank"), parsing: .unconditional, help: "The head preview's rank (a multiple of 32, at most the calibrated 256).")
    var headRank = 128

    @Option(name: .customLong("sparsity-up-level"), parsing: .unconditional,
            help: "With --sparsity-rule teal: the fraction of up's rows skipped by the gate (a calibrated level, e.g. 0.3; 0: up in full).")
    var upLevel = 0.0

    func validate() throws {
        if !(0..<1).contains(level) { throw ValidationError("--sparsity-level must be within 0..<1") }
        if !(0..<1).contains(upLevel) { throw ValidationError("--sparsity-up-level must be within 0..<1") }
        try Self.validateHead(candidates: headCandidates, rank: headRank, flags: ("--sparsity-head-candidates", "--sparsity-head-rank"))
    }

    static func validateHead(candidates: Int, rank: Int, flags: (candidates: String, rank: String)) throws {
        if candidates < 0 { throw ValidationError("\(flags.candidates) must be at least 0") }
        if rank <= 0 || rank % 32 != 0 { throw ValidationError("\(flags.rank) must be a positive multiple of 32") }
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
                                      headCandidates: headCandidates, headRank: headRank, upSparsity: upLevel, pool: pool)
    }
}
