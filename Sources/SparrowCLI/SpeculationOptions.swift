import ArgumentParser
import SparrowEngine

/// The speculative decoding flags: a draft model or prompt lookup proposes tokens that the
/// model verifies several at a time.
struct SpeculationFlags: ParsableArguments {
    @Option(name: .customLong("draft-model"), help: "A smaller model with the same vocabulary that drafts tokens (catalog name or GGUF path).")
    var draftModel: String?

    @Flag(help: "Draft by finding the last tokens earlier in the prompt or reply (prompt lookup).")
    var lookup = false

    @Option(name: .customLong("lookup-ngram"), parsing: .unconditional, help: "The longest n-gram prompt lookup matches.")
    var lookupNgram = 3

    @Option(name: .customLong("lookup-min-ngram"), parsing: .unconditional, help: "The shortest n-gram prompt lookup falls back to.")
    var lookupMinNgram = 1

    // Default 7: a pass over 8 tokens gives each token two lanes of the panel kernels; from 9,
    // one lane each, and a pass costs about twice as much (`sparrow bench --verify`).
    @Option(name: .customLong("draft-max"), parsing: .unconditional, help: "The most tokens drafted per verification pass.")
    var draftMax = 7

    @Option(name: .customLong("draft-min"), parsing: .unconditional, help: "Drafts shorter than this are dropped (that step decodes plainly).")
    var draftMin = 0

    // Default 0, as llama.cpp's p_min. Measured before short verification passes got cheaper
    // (code edit, 0.5B for 1.5B: 1.00x at 0.5, 1.01x at 0); not measured again since.
    @Option(name: .customLong("draft-min-p"), parsing: .unconditional, help: "A draft model stops drafting when its top probability falls below this.")
    var draftMinP: Float = 0

    @Option(name: .customLong("draft-head-candidates"),
            help: "A draft model computes exact logits for only this many tokens per step, ranked by a one-bit sketch of its output projection (0: all).")
    var draftHeadCandidates = SketchedHead.defaultCandidates

    @Flag(name: .customLong("draft-always"), help: "Draft at every step, even while drafting measures slower than plain decoding.")
    var draftAlways = false

    @Flag(help: "Also decode the same prompt plainly and report both speeds (with --draft-model or --lookup).")
    var compare = false

    func validate() throws {
        if draftModel != nil && lookup { throw ValidationError("choose --draft-model or --lookup, not both") }
        if draftMax < 1 { throw ValidationError("--draft-max must be at least 1") }
        if draftMin < 0 || draftMin > draftMax { throw ValidationError("--draft-min must be within 0...--draft-max") }
        if lookupNgram < 1 { throw ValidationError("--lookup-ngram must be at least 1") }
        if lookupMinNgram < 1 || lookupMinNgram > lookupNgram { throw ValidationError("--lookup-min-ngram must be within 1...--lookup-ngram") }
        if !(0...1).contains(draftMinP) { throw ValidationError("--draft-min-p must be within 0...1") }
        if draftHeadCandidates < 0 { throw ValidationError("--draft-head-candidates must be at least 0") }
        if draftAlways && !enabled { throw ValidationError("--draft-always needs --draft-model or --lookup") }
        if compare && !enabled { throw ValidationError("--compare needs --draft-model or --lookup") }
    }

    var enabled: Bool { draftModel != nil || lookup }

    /// The speculation to run, or nil without a draft source.
    func options(target: LanguageModel, session: Session) throws -> SpeculationOptions? {
        guard var speculation = try source(target: target, session: session).map({ SpeculationOptions(source: $0, maxDraft: draftMax, minDraft: draftMin) })
        else { return nil }
        speculation.adaptive = !draftAlways
        return speculation
    }

    private func source(target: LanguageModel, session: Session) throws -> (any DraftSource)? {
        if lookup { return PromptLookupDraft(ngram: lookupNgram, minimumNgram: lookupMinNgram) }
        guard let draft = try loadDraftModel() else { return nil }
        return try DraftModel(model: draft, target: target, contextSize: session.capacity, pool: session.pool, minimumConfidence: draftMinP,
                              headCandidates: draftHeadCandidates)
    }

    /// The --draft-model, pulled first when it is a catalog name not yet cached.
    func loadDraftModel() throws -> LanguageModel? {
        try draftModel.map { try LanguageModel(path: try ModelStore().resolve($0, pullIfMissing: true)) }
    }
}
