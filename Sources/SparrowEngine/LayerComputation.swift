import SparrowKernels

/// Which cached positions every layer attends to, beyond causality: the latest `window`
/// positions and the first `sinks` (as StreamingLLM keeps them).
public struct AttentionSpan: Sendable, Equatable {
    public let window: Int
    public let sinks: Int

    public init(window: Int, sinks: Int) {
        self.window = window
        self.sinks = sinks
    }
}

/// Working memory for one chunk of up to `rows` tokens.
struct ChunkBuffers {
    let normed, query, attended, projected, gate, up: UnsafeMutablePointer<Float>

    init(_ c: ModelConfig, rows n: Int) {
        normed = .allocate(capacity: n * c.embeddingSize)
        query = .allocate(capacity: n * c.qDim)
        attended = .allocate(capacity: n * c.qDim)
        projected = .allocate(capacity: n * c.embeddingSize)
        gate = .allocate(capacity: n * c.feedForwardSize)
        up = .allocate(capacity: n * c.feedForwardSize)
    }

    func deallocate() {
        for p in [normed, query, attended, projected, gate, up] { p.deallocate() }
    }
}

/// One layer's arithmetic on one chunk of tokens, in two halves: up to the rotary embedding
/// (which is where GemFilter reads keys and queries), and the rest. Shared by the session,
/// which runs each chunk through every layer, and the layer-major pass, which runs every chunk
/// through one layer before the next.
struct LayerComputation {
    let model: TransformerModel
    let matmul: MatMul
    let attention: Attention
    let buffers: ChunkBuffers

    /// Embeds `tokens` into the rows of `hidden`.
    func embed<C: Collection<Int>>(_ tokens: C, into hidden: UnsafeMutablePointer<Float>) {
        let d = model.config.embeddingSize
        for (t, token) in tokens.enumerated() {
            model.tokenEmbedding.dequantizeRow(token, into: hidden + t * d)
        }
        if model.config.embeddingScale != 1 { scale(hidden, by: model.config.embeddingScale, count: tokens.count * d) }
    }

    /// Layer `l`'s post-RoPE queries (into `buffers.query`), keys and values of the `n` rows of
    /// `hidden`, which sit at positions `first...`; keys and values go to those positions'
    /// rows of `keys` and `values` (the layer's cache, indexed by position). Batches sum in
    /// `order` (also in `finish` and `logits`).
    func project(layer l: Int, hidden: UnsafeMutablePointer<Float>, rows n: Int, first: Int,
                 keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, order: SummationOrder = .referenceBatch) {
        let kvDim = model.config.kvDim
        project(layer: l, hidden: hidden, rows: n, position: { first + $0 }, keyRows: keys + first * kvDim, valueRows: values + first * kvDim, order: order)
    }

    /// `project` for rows at any positions (row `t` at `position(t)`): keys and values go to
    /// consecutive rows of `keyRows` and `valueRows`.
    func project(layer l: Int, hidden: UnsafeMutablePointer<Float>, rows n: Int, position: (Int) -> Int,
                 keyRows k: UnsafeMutablePointer<Float>, valueRows v: UnsafeMutablePointer<Float>, order: SummationOrder) {
        let c = model.config, layer = model.layers[l], b = buffers
        normRows(hidden, weight: layer.attentionNorm, into: b.normed, rows: n, width: c.embeddingSize)
        matmul(layer.query, b.normed, tokens: n, order: order, into: b.query)
        matmul(layer.key, b.normed, tokens: n, order: order, into: k)
        matmul(layer.value, b.normed, tokens: n, order: order, into: v)
        if let bias = layer.queryBias { addRows(bias, into: b.query, rows: n, width: c.qDim) }
        if let bias = layer.keyBias { addRows(bias, into: k, rows: n, width: c.kvDim) }
        if let bias = layer.valueBias { addRows(bias, into: v, rows: n, width: c.kvDim) }
        if let w = layer.queryNorm { normRows(b.query, weight: w, into: b.query, rows: n * c.headCount, width: c.headDim) }
        if let w = layer.keyNorm { normRows(k, weight: w, into: k, rows: n * c.kvHeadCount, width: c.headDim) }
        let rope = c.usesSlidingWindow(layer: l) ? c.slidingWindowRope! : c.rope
        for t in 0..<n {
            rope.apply(b.query + t * c.qDim, heads: c.headCount, headDim: c.headDim, position: position(t))
            rope.apply(k + t * c.kvDim, heads: c.kvHeadCount, headDim: c.headDim, position: position(t))
        }
    }

    /// The rest of layer `l` after `project`: attention over positions 0... of `keys` and
    /// `values`, output projection and feed-forward block, updating the rows of `hidden`.
    /// Rows before `keepingRowsFrom` are dropped after attention (the caller wants only the
    /// later rows' outputs); returns how many rows remain, now at the start of `hidden`.
    func finish(layer l: Int, hidden: UnsafeMutablePointer<Float>, rows: Int, first: Int,
                keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>,
                span: AttentionSpan?, keepingRowsFrom dropped: Int = 0, order: SummationOrder = .referenceBatch,
                hooks: FeedForwardHooks = FeedForwardHooks()) -> Int {
        attend(layer: l, rows: rows, first: first, keys: keys, values: values, span: span, order: order)
        return finishAfterAttention(layer: l, hidden: hidden, rows: rows, keepingRowsFrom: dropped, order: order, hooks: hooks)
    }

    /// Layer `l`'s attention for the `rows` queries from `buffers.query` at row `firstRow`
    /// on, at positions `first...`, over the cache `keys` and `values`; into the same rows of
    /// `buffers.attended`.
    func attend(layer l: Int, rows: Int, firstRow: Int = 0, first: Int, keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>,
                span: AttentionSpan?, order: SummationOrder) {
        let c = model.config, b = buffers
        attention(queries: b.query + firstRow * c.qDim, keys: keys, values: values, tokens: rows, firstPosition: first,
                  window: narrower(c.usesSlidingWindow(layer: l) ? c.slidingWindow : nil, span?.window),
                  sinks: span?.sinks ?? 0, scale: c.attentionScale, order: order, into: b.attended + firstRow * c.qDim)
    }

    /// Layer `l` after `attend`: output projection and feed-forward block, updating the rows
    /// of `hidden` (see `finish`).
    func finishAfterAttention(layer l: Int, hidden: UnsafeMutablePointer<Float>, rows: Int, keepingRowsFrom dropped: Int = 0,
                              order: SummationOrder, hooks: FeedForwardHooks) -> Int {
        let c = model.config, layer = model.layers[l], b = buffers, d = c.embeddingSize
        matmul(layer.attentionOutput, b.attended, tokens: rows, order: order, into: b.projected)
        let n = rows - dropped
        guard n > 0 else { return 0 }
        if dropped > 0 {
            b.projected.update(from: b.projected + dropped * d, count: n * d)
            hidden.update(from: hidden + dropped * d, count: n * d)
        }
        if let w = layer.postAttentionNorm { normRows(b.projected, weight: w, into: b.projected, rows: n, width: d) }
        add(b.projected, into: hidden, count: n * d)

        normRows(hidden, weight: layer.feedForwardNorm, into: b.normed, rows: n, width: d)
        if rows > 1 || !(hooks.decode?.compute(layer: l, input: b.normed, into: b.projected) ?? false) {
            matmul(layer.gate, b.normed, tokens: n, order: order, into: b.gate)
            matmul(layer.up, b.normed, tokens: n, order: order, into: b.up)
            hooks.observer?.observe(layer: l, input: b.normed, residual: hidden, gate: b.gate, up: b.up, rows: n)
            c.architecture.activation.apply(gate: b.gate, up: b.up, count: n * c.feedForwardSize)
            matmul(layer.down, b.gate, tokens: n, order: order, into: b.projected)
        }
        if let w = layer.postFeedForwardNorm { normRows(b.projected, weight: w, into: b.projected, rows: n, width: d) }
        add(b.projected, into: hidden, count: n * d)
        return n
    }

    /// The output norm and projection of the `n` rows of `hidden`. With a shortlist naming
    /// candidates for a row, only their logits are computed, each as a one-token projection
    /// computes it, and every other logit of the row is -infinity. A decode step's `decode`
    /// hook may compute a single row's logits instead; an observer sees the projection's input.
    func logits(hidden: UnsafeMutablePointer<Float>, rows n: Int, order: SummationOrder = .referenceBatch,
                shortlist: (any LogitShortlist)? = nil, decode: (any DecodeFeedForward)? = nil,
                observer: (any FeedForwardObserver)? = nil, into logits: UnsafeMutablePointer<Float>) {
        let d = model.config.embeddingSize
        normRows(hidden, weight: model.outputNorm, into: buffers.normed, rows: n, width: d)
        observer?.observeHead(input: buffers.normed, rows: n)
        if n == 1, shortlist == nil, decode?.logits(input: buffers.normed, into: logits) == true { return }
        guard let shortlist else { return matmul(model.output, buffers.normed, tokens: n, order: order, into: logits) }
        let vocab = model.vocabularySize
        for r in 0..<n {
            guard let ids = shortlist.candidates(for: buffers.normed + r * d) else {
                matmul(model.output, buffers.normed + r * d, tokens: 1, order: order, into: logits + r * vocab)
                continue
            }
            precondition(zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 } && ids.allSatisfy { $0 >= 0 && Int($0) < vocab },
                         "shortlisted logits must be ascending ids of the vocabulary")
            let row = logits + r * vocab
            ids.withUnsafeBufferPointer { ids in
                // Computed into the row's first ids.count entries, then moved up to their ids
                // from the last down (ids[i] >= i, so nothing unread is overwritten).
                matmul.selectedRows(model.output, buffers.normed + r * d, rows: ids, into: row)
                var next = vocab
                for i in stride(from: ids.count - 1, through: -1, by: -1) {
                    let id = i >= 0 ? Int(ids[i]) : -1
                    (row + id + 1).update(repeating: -.infinity, count: next - id - 1)
                    if i >= 0 { row[id] = row[i] }
                    next = id
                }
            }
        }
    }

    /// The smaller of two optional attention windows (nil: unbounded), without allocating:
    /// this runs per layer of every decode step.
    private func narrower(_ a: Int?, _ b: Int?) -> Int? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    private func normRows(_ x: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>,
                          into out: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows {
            rmsNorm(x + r * width, weight: weight, epsilon: model.config.normEpsilon, into: out + r * width, count: width)
        }
    }

    private func addRows(_ bias: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows { add(bias, into: x + r * width, count: width) }
    }
}
