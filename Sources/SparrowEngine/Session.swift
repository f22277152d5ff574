import SparrowKernels

/// Failures while evaluating tokens.
public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
}

/// One sequence being evaluated: its key/value cache, scratch buffers and thread pool.
///
/// `evaluate` runs a batch of tokens through the model in one forward pass per chunk (batched
/// prefill for prompts, a single token for decode), appending to the cache. Nothing is
/// allocated per token once the session exists.
public final class Session: @unchecked Sendable {
    public let model: TransformerModel
    /// The most tokens the cache holds (the context size).
    public let capacity: Int
    /// The token ids at the cached positions, oldest first.
    public private(set) var tokens: [Int] = []
    /// Tokens evaluated so far (the cache's length).
    public var count: Int { tokens.count }
    /// The last layer the cached positions went through, when `prefill(_:throughLayer:)` ran
    /// only the first layers; nil when every layer holds them.
    private var partialThroughLayer: Int?

    public let pool: ThreadPool
    /// Replaces the dense feed-forward blocks of single-token steps (nil: dense).
    public var decodeFeedForward: (any DecodeFeedForward)? {
        get { hooks.decode }
        set { hooks.decode = newValue }
    }
    /// Sees every feed-forward block's input and projections (nil: none).
    public var feedForwardObserver: (any FeedForwardObserver)? {
        get { hooks.observer }
        set { hooks.observer = newValue }
    }
    private var hooks = FeedForwardHooks()
    /// Chooses the token ids whose logits evaluation computes; every other logit is -infinity.
    /// nil: all. A caller that only ranks likely tokens (a draft model) reads fewer
    /// output-projection rows.
    public var logitShortlist: (any LogitShortlist)?
    private let layers: LayerComputation
    private let keys: [UnsafeMutablePointer<Float>]    // per layer: capacity × kvDim
    private let values: [UnsafeMutablePointer<Float>]
    /// The most tokens one forward pass takes; longer batches run in chunks of this many.
    public let batchCapacity: Int
    /// The residual stream of one chunk.
    private let hidden: UnsafeMutablePointer<Float>
    private var logitsBuffer: UnsafeMutablePointer<Float>
    private var logitsRowCapacity: Int

    /// Which positions of an evaluated batch need logits.
    public enum LogitsSelection: Sendable { case last, all }

    public init(model: TransformerModel, contextSize: Int, pool: ThreadPool, batchCapacity: Int = 512) {
        let c = model.config
        self.model = model
        capacity = contextSize
        self.pool = pool
        self.batchCapacity = batchCapacity
        layers = LayerComputation(model: model, matmul: MatMul(pool: pool),
                                  attention: Attention(heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim, capacity: contextSize, pool: pool),
                                  buffers: ChunkBuffers(c, rows: batchCapacity))
        keys = (0..<c.layerCount).map { _ in .allocate(capacity: contextSize * c.kvDim) }
        values = (0..<c.layerCount).map { _ in .allocate(capacity: contextSize * c.kvDim) }
        hidden = .allocate(capacity: batchCapacity * c.embeddingSize)
        logitsRowCapacity = 1
        logitsBuffer = .allocate(capacity: model.vocabularySize)
    }

    deinit {
        for p in keys + values + [hidden] { p.deallocate() }
        layers.buffers.deallocate()
        logitsBuffer.deallocate()
    }

    /// Bytes of the key/value cache: f32 keys and values for every layer and position.
    public var cacheBytes: Int { 2 * keys.count * capacity * model.config.kvDim * MemoryLayout<Float>.stride }

    /// Forgets cached positions from `length` on, so evaluation resumes there (no copying).
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "truncate beyond the cache")
        tokens.removeLast(count - length)
        if length == 0 { partialThroughLayer = nil }
    }

    /// How many leading tokens of `prompt` the cache already holds and can keep (all but the
    /// last, whose logits the caller needs).
    public func reusablePrefix(of prompt: [Int]) -> Int {
        guard partialThroughLayer == nil else { return 0 }
        let limit = min(count, prompt.count - 1)
        var n = 0
        while n < limit && tokens[n] == prompt[n] { n += 1 }
        return n
    }

    /// Evaluates `tokens` at the next positions and returns their logits: one row of
    /// `vocabularySize` for the last token, or one per token. The buffer stays valid until the
    /// next call. With `order: .singleToken`, each row's logits (and cached keys and values)
    /// are bit for bit those of evaluating the tokens one at a time.
    @discardableResult
    public func evaluate(_ tokens: [Int], logits selection: LogitsSelection = .last, order: SummationOrder = .referenceBatch) throws -> Logits {
        try checkAppendable(tokens)
        let vocab = model.vocabularySize
        let rows = selection == .all ? tokens.count : 1
        reserveLogitsRows(rows)
        var start = 0
        while start < tokens.count {
            let end = min(start + batchCapacity, tokens.count)
            let chunk = tokens[start..<end]
            let isLast = end == tokens.count
            forward(chunk, logitsFrom: selection == .all ? 0 : (isLast ? chunk.count - 1 : chunk.count), order: order,
                    into: logitsBuffer + (selection == .all ? start * vocab : 0))
            start = end
        }
        return Logits(base: logitsBuffer, rows: rows, vocabularySize: vocab)
    }

    /// One decode step for each session, `tokens[i]` for `sessions[i]`, in one pass through
    /// the weights: a batch reads each weight matrix once for all of them, where separate
    /// steps read it once each (decode is bound by those reads). Each row sums as a step of
    /// its own would, so every session's logits and cache are bit for bit those of
    /// `evaluate([token])`. The sessions share a model and have no decode hooks (a batch runs
    /// the dense feed-forward blocks); returns each session's logits, valid until its next
    /// evaluation.
    public static func decode(_ tokens: [Int], in sessions: [Session]) throws -> [UnsafeBufferPointer<Float>] {
        precondition(tokens.count == sessions.count && !sessions.isEmpty, "one token per session")
        let leader = sessions[0], c = leader.model.config, n = sessions.count
        guard n <= leader.batchCapacity else { throw EvaluationError(description: "\(n) sessions exceed one chunk of \(leader.batchCapacity)") }
        for (session, token) in zip(sessions, tokens) {
            precondition(session.model === leader.model && session.capacity == leader.capacity && session.hooks.isEmpty,
                         "batched sessions share a model and context size and have no feed-forward hooks")
            try session.checkAppendable([token])
        }
        let vocab = leader.model.vocabularySize
        leader.reserveLogitsRows(n)
        let layers = leader.layers, hidden = leader.hidden, positions = sessions.map(\.count)
        // The new keys and values land in the feed-forward buffers, free until the block runs,
        // before moving to each session's cache.
        let newKeys = layers.buffers.gate, newValues = layers.buffers.up
        layers.embed(tokens, into: hidden)
        for l in 0..<leader.model.layers.count {
            layers.project(layer: l, hidden: hidden, rows: n, position: { positions[$0] }, keyRows: newKeys, valueRows: newValues, order: .singleToken)
            for (i, session) in sessions.enumerated() {
                (session.keys[l] + positions[i] * c.kvDim).update(from: newKeys + i * c.kvDim, count: c.kvDim)
                (session.values[l] + positions[i] * c.kvDim).update(from: newValues + i * c.kvDim, count: c.kvDim)
                layers.attend(layer: l, rows: 1, firstRow: i, first: positions[i], keys: session.keys[l], values: session.values[l],
                              span: nil, order: .singleToken)
            }
            _ = layers.finishAfterAttention(layer: l, hidden: hidden, rows: n, order: .singleToken, hooks: FeedForwardHooks())
        }
        layers.logits(hidden: hidden, rows: n, order: .singleToken, into: leader.logitsBuffer)
        return sessions.enumerated().map { i, session in
            session.tokens.append(tokens[i])
            if i > 0 { session.logitsBuffer.update(from: leader.logitsBuffer + i * vocab, count: vocab) }
            return UnsafeBufferPointer(start: session.logitsBuffer, count: vocab)
        }
    }

    /// Grows the logits buffer to hold `rows` rows (its contents are not kept).
    private func reserveLogitsRows(_ rows: Int) {
        guard rows > logitsRowCapacity else { return }
        logitsBuffer.deallocate()
        logitsBuffer = .allocate(capacity: rows * model.vocabularySize)
        logitsRowCapacity = rows
    }

    /// Runs `tokens` from an empty cache through layers 0..<layer and layer `layer` up to its
    /// rotary embedding, in chunks: the cache then holds only those layers' keys (and values
    /// before `layer`), enough for `keysAndQueries(ofNext:atLayer:)` at that layer. Evaluation
    /// afterwards needs `truncate(to: 0)`. With a `span`, every layer attends only within it:
    /// linear rather than quadratic in the prompt.
    package func prefill(_ tokens: [Int], throughLayer layer: Int, span: AttentionSpan? = nil) throws {
        try model.checkLayer(layer)
        truncate(to: 0)
        try checkAppendable(tokens)
        partialThroughLayer = layer
        var start = 0
        while start < tokens.count {
            let end = min(start + batchCapacity, tokens.count)
            forward(tokens[start..<end], logitsFrom: end - start, stopAfterRopeOf: layer, span: span, into: logitsBuffer)
            start = end
        }
    }

    /// Runs `next` (at most one chunk) at the next positions through layers 0..<layer and
    /// layer `layer` up to its rotary embedding, without adding them to the cache, and returns
    /// that layer's post-RoPE keys of every cached token and these (`[token][kvHead][headDim]`)
    /// and these tokens' post-RoPE queries (`[token][head][headDim]`): what GemFilter scores
    /// prompt tokens with. The buffers stay valid until the session's next evaluation.
    package func keysAndQueries(ofNext next: [Int], atLayer layer: Int, span: AttentionSpan? = nil) throws
        -> (keys: UnsafeBufferPointer<Float>, queries: UnsafeBufferPointer<Float>) {
        try model.checkLayer(layer)
        try checkAppendable(next, throughLayer: layer)
        guard next.count <= batchCapacity else { throw EvaluationError(description: "\(next.count) query tokens exceed one chunk of \(batchCapacity)") }
        let c = model.config
        forward(next[...], logitsFrom: next.count, stopAfterRopeOf: layer, span: span, into: logitsBuffer)
        tokens.removeLast(next.count)
        return (UnsafeBufferPointer(start: keys[layer], count: (count + next.count) * c.kvDim),
                UnsafeBufferPointer(start: layers.buffers.query, count: next.count * c.qDim))
    }

    /// Throws unless `new` tokens fit and, run through layers 0...`layer` (nil: all), would
    /// attend to cached positions those layers hold.
    private func checkAppendable(_ new: [Int], throughLayer layer: Int? = nil) throws {
        guard !new.isEmpty else { throw EvaluationError(description: "nothing to evaluate") }
        if let partial = partialThroughLayer, layer.map({ $0 > partial }) ?? true {
            throw EvaluationError(description: "the cache holds layers 0...\(partial) only; truncate it to 0 first")
        }
        guard count + new.count <= capacity else {
            throw EvaluationError(description: "context full: \(count) cached + \(new.count) new tokens exceed the context size \(capacity)")
        }
        try model.checkTokenIDs(new)
    }

    /// Runs one chunk through every layer (or, with `stopAfterRopeOf`, up to that layer's
    /// rotary embedding); computes logits for chunk rows `logitsFrom...`.
    private func forward(_ tokens: ArraySlice<Int>, logitsFrom: Int, stopAfterRopeOf stop: Int? = nil, span: AttentionSpan? = nil,
                         order: SummationOrder = .referenceBatch, into logits: UnsafeMutablePointer<Float>) {
        var n = tokens.count
        let first = count, last = model.layers.count - 1
        layers.embed(tokens, into: hidden)
        for l in 0...last {
            layers.project(layer: l, hidden: hidden, rows: n, first: first, keys: keys[l], values: values[l], order: order)
            if l == stop { break }
            // Past the last attention only the rows whose logits are wanted matter (the cache
            // is complete); llama.cpp narrows here too, and its kernels depend on row counts.
            n = layers.finish(layer: l, hidden: hidden, rows: n, first: first, keys: keys[l], values: values[l], span: span,
                              keepingRowsFrom: l == last ? logitsFrom : 0, order: order, hooks: hooks)
        }
        self.tokens += tokens
        if stop == nil && n > 0 {
            layers.logits(hidden: hidden, rows: n, order: order, shortlist: logitShortlist, decode: tokens.count == 1 ? hooks.decode : nil,
                          observer: hooks.observer, into: logits)
        }
    }
}

/// Picks, per evaluated row, the token ids whose logits are worth computing exactly.
public protocol LogitShortlist: AnyObject {
    /// Ascending ids of the vocabulary for the row whose output-normalised hidden state is
    /// `hidden` (the input of the output projection); nil: every logit.
    func candidates(for hidden: UnsafePointer<Float>) -> [Int32]?
}

/// Logits rows returned by `Session.evaluate`, valid until the session's next evaluation.
public struct Logits: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    public let rows: Int
    public let vocabularySize: Int

    public subscript(row: Int) -> UnsafeBufferPointer<Float> {
        precondition(row >= 0 && row < rows)
        return UnsafeBufferPointer(start: base + row * vocabularySize, count: vocabularySize)
    }

    /// The last row: the next-token distribution after the evaluated batch.
    public var last: UnsafeBufferPointer<Float> { self[rows - 1] }
}
