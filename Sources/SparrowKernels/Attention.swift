import CSparrowSIMD
import Foundation

/// Causal scaled-dot-product attention of a batch of query tokens against a key/value cache,
/// with grouped-query heads and an optional sliding window (optionally with attention sinks:
/// the first few positions stay visible, as StreamingLLM keeps them).
///
/// Layouts (row-major f32): queries and output `[token][head][headDim]`; keys and values
/// `[position][kvHead][headDim]`, holding every position up to the last query's.
public final class Attention: @unchecked Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    private let pool: ThreadPool
    private let capacity: Int
    /// Per worker: for each query of a block, a score row of `capacity` (+ a lane group of
    /// padding and one of sinks) and up to 32 partial outputs of `headDim`.
    private let scratch: UnsafeMutablePointer<Float>
    private var scratchPerQuery: Int { Self.scratchPerQuery(capacity: capacity, headDim: headDim) }
    private static func scratchPerQuery(capacity: Int, headDim: Int) -> Int { rowCapacity(capacity) + maxSlots * headDim }
    private static func rowCapacity(_ capacity: Int) -> Int { capacity + 2 * lanes }

    /// The most attention sinks a windowed call may keep (one lane group).
    public static let maxSinks = lanes

    /// llama.cpp sums over positions in f32 lanes (position mod 8, and for a single query also
    /// in four accumulators, position / 8 mod 4); the same grouping makes every sum round
    /// identically.
    private static let lanes = 8
    private static let maxSlots = 4 * lanes

    /// - Parameter capacity: the most positions any call will attend over.
    public init(heads: Int, kvHeads: Int, headDim: Int, capacity: Int, pool: ThreadPool) {
        precondition(heads % kvHeads == 0, "query heads must be a multiple of key/value heads")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.pool = pool
        self.capacity = capacity
        scratch = .allocate(capacity: heads / kvHeads * Self.scratchPerQuery(capacity: capacity, headDim: headDim) * pool.threadCount)
    }

    deinit { scratch.deallocate() }

    /// - Parameters:
    ///   - firstPosition: position of the first query token; query t sits at firstPosition + t.
    ///   - window: when set, a query at position p sees keys at positions p-window+1 ... p only,
    ///     and positions 0..<sinks (at most `maxSinks`).
    ///   - order: `.singleToken` sums every query's p·V as a one-query call does.
    public func callAsFunction(
        queries: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        tokens: Int, firstPosition: Int, window: Int?, sinks: Int = 0, scale: Float,
        order: SummationOrder = .referenceBatch, into output: UnsafeMutablePointer<Float>
    ) {
        precondition(firstPosition + tokens <= capacity, "attention span exceeds its capacity")
        precondition((0...Self.maxSinks).contains(sinks), "at most \(Self.maxSinks) attention sinks")
        let groupSize = heads / kvHeads
        let kvStride = kvHeads * headDim
        let headDim = headDim, lanes = Self.lanes, heads = heads
        // A block is a token's query heads that share a key/value head: each cached key is read
        // once for all of them. Groups are cut only when there are too few blocks to keep every
        // worker busy.
        let split = Self.groupSplit(groupSize: groupSize, groups: tokens * kvHeads, workers: pool.threadCount)
        let blockSize = groupSize / split, blocksPerToken = kvHeads * split
        // Prefill's p·V is tinyBLAS (8 lanes); a single query's is ggml_vec_dot_f32.
        let slots = tokens == 1 || order == .singleToken ? Self.maxSlots : lanes
        let perQuery = scratchPerQuery, rowCapacity = Self.rowCapacity(capacity)
        pool.run { worker, workers in
            let scratch = self.scratch + worker * blockSize * perQuery
            // Strided assignment balances the causal triangle: later tokens have longer spans.
            var block = worker
            while block < tokens * blocksPerToken {
                let t = block / blocksPerToken, firstHead = block % blocksPerToken * blockSize
                let position = firstPosition + t
                let first = window.map { max(0, position - $0 + 1) } ?? 0
                // Lane groups are aligned to absolute positions, as in llama.cpp's masked rows.
                let start = first - first % lanes
                let end = (position + lanes) / lanes * lanes
                // Sinks beyond the window get a lane group of their own ahead of the window's.
                let sinkGroup = sinks > 0 && start >= lanes ? lanes : 0
                let kvOffset = (firstHead / groupSize) * headDim
                let q = queries + (t * heads + firstHead) * headDim
                func visible(_ j: Int) -> Bool { (first <= j || j < sinks) && j <= position }
                // Score row i: its sink group (positions 0..<lanes, of which only the sinks are
                // visible), then positions start..<end.
                func score(_ j: Int, at index: Int) {
                    guard visible(j) else {
                        for i in 0..<blockSize { scratch[i * perQuery + index] = -.infinity }
                        return
                    }
                    let key = keys + j * kvStride + kvOffset
                    // Ahead of the hardware prefetcher, which follows streams, not this stride.
                    sparrow_prefetch(key + 8 * kvStride, headDim * 4)
                    for i in 0..<blockSize { scratch[i * perQuery + index] = headDot(q + i * headDim, key, count: headDim) * scale }
                }
                for j in 0..<sinkGroup { score(j, at: j) }
                for j in start..<end { score(j, at: sinkGroup + j - start) }
                for i in 0..<blockSize {
                    let scores = scratch + i * perQuery, partial = scores + rowCapacity
                    softmaxInLaneGroups(scores, count: sinkGroup + end - start)
                    weightedSums(values: values + kvOffset, stride: kvStride, headDim: headDim, slots: slots,
                                 sinks: 0..<min(sinks, sinkGroup), sinkWeights: scores, window: start...position,
                                 windowWeights: scores + sinkGroup - start, visible: visible, into: partial)
                    let out = output + (t * heads + firstHead + i) * headDim
                    var d = 0
                    while d + 16 <= headDim {
                        store16(reduceSlots(slots) { load16(partial + $0 * headDim + d) }, out + d)
                        d += 16
                    }
                    while d < headDim {
                        out[d] = reduceSlots(slots) { SIMD2(partial[$0 * headDim + d], 0) }[0]
                        d += 1
                    }
                }
                block += workers
            }
        }
    }

    /// Into how many blocks each group of query heads sharing a key/value head is cut: whole
    /// groups when there are enough to share out evenly, else the fewest cuts that are.
    static func groupSplit(groupSize: Int, groups: Int, workers: Int) -> Int {
        for split in 1...groupSize where groupSize % split == 0 {
            let blocks = groups * split
            if blocks % workers == 0 || blocks >= 4 * workers { return split }
        }
        return groupSize
    }
}

/// partial[s] = the sum, over the positions j with j mod slots = s (sinks first, then the
/// window, each in increasing order), of weight(j) · values row j: one fused multiply-add per
/// position into the slot, as llama.cpp's lanes sum. A slot's sums stay in registers while its
/// positions stream past (a chunk of 64 dimensions at a time), instead of a load and a store of
/// the slot per position.
@inline(__always)
func weightedSums(values: UnsafePointer<Float>, stride: Int, headDim: Int, slots: Int,
                  sinks: Range<Int>, sinkWeights: UnsafePointer<Float>, window: ClosedRange<Int>, windowWeights: UnsafePointer<Float>,
                  visible: (Int) -> Bool, into partial: UnsafeMutablePointer<Float>) {
    for slot in 0..<slots {
        let firstSink = sinks.lowerBound + (slot - sinks.lowerBound % slots + slots) % slots
        let firstInWindow = window.lowerBound + (slot - window.lowerBound % slots + slots) % slots
        /// The slot's positions in summation order, each with its values row and weight.
        @inline(__always) func forEachPosition(_ body: (UnsafePointer<Float>, Float) -> Void) {
            for j in Swift.stride(from: firstSink, to: sinks.upperBound, by: slots) { body(values + j * stride, sinkWeights[j]) }
            for j in Swift.stride(from: firstInWindow, through: window.upperBound, by: slots) where visible(j) {
                body(values + j * stride, windowWeights[j])
            }
        }
        var d = 0
        while d < headDim {
            let out = partial + slot * headDim + d
            if d + 64 <= headDim {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                forEachPosition { row, weight in
                    let v = row + d, w = SIMD16<Float>(repeating: weight)
                    a0.addProduct(load16(v), w)
                    a1.addProduct(load16(v + 16), w)
                    a2.addProduct(load16(v + 32), w)
                    a3.addProduct(load16(v + 48), w)
                }
                store16(a0, out); store16(a1, out + 16); store16(a2, out + 32); store16(a3, out + 48)
                d += 64
            } else {
                for e in 0..<min(16, headDim - d) {
                    var sum: Float = 0
                    forEachPosition { row, weight in sum = sum.addingProduct(row[d + e], weight) }
                    out[e] = sum
                }
                d += 16
            }
        }
    }
}

/// q·k as llama.cpp's ggml_vec_dot_f32 forms it on AVX2: four 8-lane accumulators over
/// 32-element steps, paired (0+2, 1+3), then halves and adjacent lanes added.
@inline(__always)
func headDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var acc = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
    var i = 0
    while i + 32 <= count {
        acc.0.addProduct(ra.simd(SIMD8<Float>.self, at: 4 * i), rb.simd(SIMD8<Float>.self, at: 4 * i))
        acc.1.addProduct(ra.simd(SIMD8<Float>.self, at: 4 * i + 32), rb.simd(SIMD8<Float>.self, at: 4 * i + 32))
        acc.2.addProduct(ra.simd(SIMD8<Float>.self, at: 4 * i + 64), rb.simd(SIMD8<Float>.self, at: 4 * i + 64))
        acc.3.addProduct(ra.simd(SIMD8<Float>.self, at: 4 * i + 96), rb.simd(SIMD8<Float>.self, at: 4 * i + 96))
        i += 32
    }
    var sum = Double(reduceFourAccumulators(acc.0, acc.1, acc.2, acc.3))
    while i < count {
        sum += Double(a[i] * b[i])
        i += 1
    }
    return Float(sum)
}

/// GGML_F32_VEC_REDUCE's order: (a0 + a2) + (a1 + a3) lane-wise, then each lane with the one
/// four above it, then adjacent pairs.
@inline(__always)
func reduceFourAccumulators(_ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>, _ a3: SIMD8<Float>) -> Float {
    let v = (a0 + a2) + (a1 + a3)
    let half = v.lowHalf + v.highHalf
    return (half[0] + half[1]) + (half[2] + half[3])
}

/// Per element, the sum of the `slots` (8, or 32 for a single query's four accumulators)
/// partial outputs `slot(s)`, in llama.cpp's order: for 8, hsum_float_8's over the lanes
/// ((0+4)+(2+6)) + ((1+5)+(3+7)); for 32, GGML_F32_VEC_REDUCE's ((a0 + a2) + (a1 + a3) lane-wise,
/// accumulator k's lane l being slot 8k + l, then each lane with the one four above it, then
/// adjacent pairs). Lane-wise, on 16 elements at once (or on one, in a SIMD2).
@inline(__always)
func reduceSlots<V: SIMD>(_ slots: Int, _ slot: (Int) -> V) -> V where V.Scalar: FloatingPoint {
    if slots == 8 { return ((slot(0) + slot(4)) + (slot(2) + slot(6))) + ((slot(1) + slot(5)) + (slot(3) + slot(7))) }
    func lane(_ l: Int) -> V { (slot(l) + slot(16 + l)) + (slot(8 + l) + slot(24 + l)) }
    return ((lane(0) + lane(4)) + (lane(1) + lane(5))) + ((lane(2) + lane(6)) + (lane(3) + lane(7)))
}

/// In-place softmax over `count` (a multiple of 8) scores, as llama.cpp's soft_max: e^(x-max)
/// with its vectorised exponential, each group of 8 summed in f32, the groups in f64.
@inline(__always)
func softmaxInLaneGroups(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let raw = UnsafeMutableRawPointer(x)
    var high = SIMD8<Float>(repeating: -.infinity)
    for i in stride(from: 0, to: count, by: 8) { high = sparrow_max_f32x8(high, raw.load(fromByteOffset: 4 * i, as: SIMD8<Float>.self)) }
    let maxValue = SIMD16<Float>(repeating: sparrow_reduce_max_f32x16(SIMD16(lowHalf: high, highHalf: high)))
    var sum: Double = 0
    var i = 0
    while i < count {
        // Two lane groups per call of the 16-lane exponential (the second may be padding).
        let second = i + 16 <= count
        let v = SIMD16(lowHalf: raw.load(fromByteOffset: 4 * i, as: SIMD8<Float>.self),
                       highHalf: second ? raw.load(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self) : SIMD8(repeating: -.infinity))
        let e = vectorExp(v - maxValue)
        raw.storeBytes(of: e.lowHalf, toByteOffset: 4 * i, as: SIMD8<Float>.self)
        sum += Double(sparrow_reduce_add_f32x8(e.lowHalf))
        if second {
            raw.storeBytes(of: e.highHalf, toByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            sum += Double(sparrow_reduce_add_f32x8(e.highHalf))
        }
        i += second ? 16 : 8
    }
    scale(x, by: Float(1 / sum), count: count)
}

/// y[i] = fma(x[i], a, y[i]).
@inline(__always)
func addProduct(_ x: UnsafePointer<Float>, _ a: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
    let va = SIMD16<Float>(repeating: a)
    var i = 0
    while i + 16 <= count {
        store16(load16(y + i).addingProduct(load16(x + i), va), y + i)
        i += 16
    }
    while i < count {
        y[i] = y[i].addingProduct(x[i], a)
        i += 1
    }
}
