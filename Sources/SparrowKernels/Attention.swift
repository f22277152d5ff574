import Foundation

/// Causal scaled-dot-product attention of a batch of query tokens against a key/value cache,
/// with grouped-query heads and an optional sliding window.
///
/// Layouts (row-major f32): queries and output `[token][head][headDim]`; keys and values
/// `[position][kvHead][headDim]`, holding every position up to the last query's.
public final class Attention: @unchecked Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    private let pool: ThreadPool
    private let capacity: Int
    private let scores: UnsafeMutablePointer<Float>  // one row of `capacity` per worker

    /// - Parameter capacity: the most positions any call will attend over.
    public init(heads: Int, kvHeads: Int, headDim: Int, capacity: Int, pool: ThreadPool) {
        precondition(heads % kvHeads == 0, "query heads must be a multiple of key/value heads")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.pool = pool
        self.capacity = capacity
        scores = .allocate(capacity: capacity * pool.threadCount)
    }

    deinit { scores.deallocate() }

    /// - Parameters:
    ///   - firstPosition: position of the first query token; query t sits at firstPosition + t.
    ///   - window: when set, a query at position p sees keys at positions p-window+1 ... p only.
    public func callAsFunction(
        queries: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        tokens: Int, firstPosition: Int, window: Int?, scale: Float,
        into output: UnsafeMutablePointer<Float>
    ) {
        precondition(firstPosition + tokens <= capacity, "attention span exceeds its capacity")
        let items = tokens * heads
        let groupSize = heads / kvHeads
        let kvStride = kvHeads * headDim
        pool.run { worker, workers in
            let row = scores + worker * capacity
            // Strided assignment balances the causal triangle: later tokens have longer spans.
            var item = worker
            while item < items {
                let t = item / heads, h = item % heads
                let position = firstPosition + t
                let first = window.map { max(0, position - $0 + 1) } ?? 0
                let span = position - first + 1
                let q = queries + item * headDim
                let kvOffset = (h / groupSize) * headDim
                for j in 0..<span {
                    row[j] = dot(q, keys + (first + j) * kvStride + kvOffset, count: headDim) * scale
                }
                softmax(row, count: span)
                let out = output + item * headDim
                out.initialize(repeating: 0, count: headDim)
                for j in 0..<span {
                    addScaled(values + (first + j) * kvStride + kvOffset, scale: row[j], into: out, count: headDim)
                }
                item += workers
            }
        }
    }
}
