import Foundation
import SparrowKernels
import SparrowTestSupport
import Testing

@Suite struct AttentionTests {
    /// Softmax(q·k · scale) · V over the visible positions, in Float64.
    private func reference(q: [Float], k: [Float], v: [Float], heads: Int, kvHeads: Int, headDim: Int, tokens: Int, first: Int,
                           visible: (_ position: Int, _ key: Int) -> Bool) -> [Double] {
        let kvStride = kvHeads * headDim, scale = 1 / Double(headDim).squareRoot()
        var out = [Double](repeating: 0, count: tokens * heads * headDim)
        for t in 0..<tokens {
            for h in 0..<heads {
                let position = first + t, kvOffset = (h / (heads / kvHeads)) * headDim
                let keys = (0...position).filter { visible(position, $0) }
                let logits = keys.map { j in
                    (0..<headDim).map { Double(q[(t * heads + h) * headDim + $0]) * Double(k[j * kvStride + kvOffset + $0]) }.reduce(0, +) * scale
                }
                let top = logits.max()!
                let weights = logits.map { exp($0 - top) }
                let total = weights.reduce(0, +)
                for (j, w) in zip(keys, weights) {
                    for d in 0..<headDim { out[(t * heads + h) * headDim + d] += w / total * Double(v[j * kvStride + kvOffset + d]) }
                }
            }
        }
        return out
    }

    @Test(arguments: [(nil, 0), (16, 0), (16, 4), (5, 3)] as [(Int?, Int)])
    func matchesAFloat64Reference(window: Int?, sinks: Int) {
        let heads = 4, kvHeads = 2, headDim = 8, positions = 70
        var rng = SplitMix64(seed: UInt64(window ?? 0) * 31 + UInt64(sinks))
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -2...2, using: &rng) } }
        let k = random(positions * kvHeads * headDim), v = random(positions * kvHeads * headDim)
        let attention = Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: positions, pool: ThreadPool(threadCount: 2))
        // A prefill chunk at positions 40..<70 and a single decode query at 69.
        for (first, tokens) in [(40, 30), (69, 1)] {
            let q = random(tokens * heads * headDim)
            var out = [Float](repeating: 0, count: tokens * heads * headDim)
            attention(queries: q, keys: k, values: v, tokens: tokens, firstPosition: first, window: window, sinks: sinks,
                      scale: 1 / Float(headDim).squareRoot(), into: &out)
            let expected = reference(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDim: headDim, tokens: tokens, first: first) { p, j in
                window.map { j > p - $0 || j < sinks } ?? true
            }
            let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
            #expect(worst < 1e-5, "window \(String(describing: window)), sinks \(sinks), first \(first): error \(worst)")
        }
    }

    /// Query heads sharing a key/value head run as one block, with value sums held in registers
    /// 64 dimensions at a time: at real head widths (and one with a tail) a verification batch
    /// in the one-token order still gives each query exactly a one-query call's result.
    @Test(arguments: [(64, nil, 0), (128, nil, 0), (72, 40, 4)] as [(Int, Int?, Int)])
    func aOneTokenOrderBatchEqualsSingleQueries(headDim: Int, window: Int?, sinks: Int) {
        let heads = 6, kvHeads = 2, positions = 300, tokens = 8, first = positions - tokens
        var rng = SplitMix64(seed: UInt64(headDim))
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -2...2, using: &rng) } }
        let k = random(positions * kvHeads * headDim), v = random(positions * kvHeads * headDim), q = random(tokens * heads * headDim)
        let attention = Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, capacity: positions, pool: ThreadPool(threadCount: 2))
        let scale = 1 / Float(headDim).squareRoot(), width = heads * headDim
        var batch = [Float](repeating: 0, count: tokens * width)
        attention(queries: q, keys: k, values: v, tokens: tokens, firstPosition: first, window: window, sinks: sinks, scale: scale,
                  order: .singleToken, into: &batch)
        for t in 0..<tokens {
            var single = [Float](repeating: 0, count: width)
            attention(queries: Array(q[(t * width)...].prefix(width)), keys: k, values: v, tokens: 1, firstPosition: first + t,
                      window: window, sinks: sinks, scale: scale, into: &single)
            let identical = single == Array(batch[(t * width)...].prefix(width))
            #expect(identical, "token \(t) differs from its one-query call")
        }
        let expected = reference(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDim: headDim, tokens: tokens, first: first) { p, j in
            window.map { j > p - $0 || j < sinks } ?? true
        }
        let worst = zip(batch, expected).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 1e-5, "error \(worst)")
    }
}
