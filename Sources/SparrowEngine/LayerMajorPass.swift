import SparrowKernels

/// Runs a whole prompt through a model's first layers one layer at a time (each layer over
/// every chunk before the next layer), holding every token's hidden state and one layer's
/// keys and values, where a session would hold the keys and values of every layer it ran.
/// For a prompt's keys and queries at an early layer (what GemFilter scores) this needs a
/// fraction of a cache's memory: at 16k tokens on Qwen2.5 0.5B, 57 MiB of hidden states and
/// 16 MiB of keys and values instead of 176 MiB of cache through layer 10.
package enum LayerMajorPass {
    /// Calls `body` with layer `layer`'s post-RoPE keys of every token (`[token][kvHead][headDim]`)
    /// and the post-RoPE queries of the last `queryCount` tokens (`[token][head][headDim]`),
    /// after layers 0..<layer ran over the prompt (attending within `span` when set).
    package static func keysAndQueries<Result>(
        of tokens: [Int], queryCount: Int, atLayer layer: Int, span: AttentionSpan?, model: TransformerModel, pool: ThreadPool,
        chunk: Int = 512, _ body: (_ keys: UnsafeBufferPointer<Float>, _ queries: UnsafeBufferPointer<Float>) throws -> Result
    ) throws -> Result {
        let c = model.config, count = tokens.count
        try model.checkLayer(layer)
        guard count > 0, (1...count).contains(queryCount) else {
            throw EvaluationError(description: "\(queryCount) query tokens for a prompt of \(count)")
        }
        try model.checkTokenIDs(tokens)
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: count * c.embeddingSize)
        let keys = UnsafeMutablePointer<Float>.allocate(capacity: count * c.kvDim)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: count * c.kvDim)
        let queries = UnsafeMutablePointer<Float>.allocate(capacity: queryCount * c.qDim)
        let computation = LayerComputation(
            model: model, matmul: MatMul(pool: pool),
            attention: Attention(heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim, capacity: count, pool: pool),
            buffers: ChunkBuffers(c, rows: chunk))
        defer {
            for p in [hidden, keys, values, queries] { p.deallocate() }
            computation.buffers.deallocate()
        }
        computation.embed(tokens, into: hidden)
        let firstQuery = count - queryCount
        for l in 0...layer {
            for start in stride(from: 0, to: count, by: chunk) {
                let rows = min(chunk, count - start), rowsHidden = hidden + start * c.embeddingSize
                computation.project(layer: l, hidden: rowsHidden, rows: rows, first: start, keys: keys, values: values)
                if l < layer {
                    _ = computation.finish(layer: l, hidden: rowsHidden, rows: rows, first: start, keys: keys, values: values, span: span)
                } else if start + rows > firstQuery {
                    let from = max(start, firstQuery)
                    (queries + (from - firstQuery) * c.qDim).update(from: computation.buffers.query + (from - start) * c.qDim,
                                                                    count: (start + rows - from) * c.qDim)
                }
            }
        }
        return try body(UnsafeBufferPointer(start: keys, count: count * c.kvDim), UnsafeBufferPointer(start: queries, count: queryCount * c.qDim))
    }
}
