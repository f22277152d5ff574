/// Index selections over a vector, in ascending index order (so that the rows they pick are
/// read front to back).
public enum Selection {
    /// Writes the indices of the `k` largest of `values[0..<count]` to `indices` (ties at the
    /// boundary go to the lower indices); `scratch` holds `count` floats. Linear time: radix
    /// selection finds the k-th largest value, then one pass collects.
    public static func largest(_ k: Int, of values: UnsafePointer<Float>, count: Int,
                               scratch: UnsafeMutablePointer<Float>, into indices: UnsafeMutablePointer<Int32>) {
        precondition(k >= 0 && k <= count, "Selection.largest: k \(k) outside 0...\(count)")
        guard k > 0 else { return }
        scratch.withMemoryRebound(to: UInt32.self, capacity: count) { keys in
            for j in 0..<count { keys[j] = orderKey(values[j]) }
            let boundary = kthLargest(k, of: keys, count: count)
            var tiesLeft = boundary.ties, n = 0
            for j in 0..<count {
                let key = keys[j]
                if key > boundary.key || (key == boundary.key && tiesLeft > 0) {
                    if key == boundary.key { tiesLeft -= 1 }
                    indices[n] = Int32(j)
                    n += 1
                }
            }
        }
    }

    /// Writes the indices, ascending, of about the `k` largest of `values[0..<count]` and
    /// returns how many: every value at least the one ranked like k among every `stride`-th
    /// value. One selection over the sample and one vector pass over all, where `largest`
    /// makes five passes over all (over a 152k vocabulary, by the decode speed it cost, on the
    /// order of a millisecond); the count varies around k by about 1/sqrt(k / stride). `scratch` holds
    /// count / stride + 1 floats, `indices` count.
    public static func approximatelyLargest(_ k: Int, of values: UnsafePointer<Float>, count: Int, stride: Int,
                                            scratch: UnsafeMutablePointer<Float>, into indices: UnsafeMutablePointer<Int32>) -> Int {
        precondition(k > 0 && k <= count && stride > 0, "Selection.approximatelyLargest: k \(k) outside 1...\(count) or stride \(stride)")
        let samples = (count + stride - 1) / stride, sampledK = min(samples, max(1, (k * samples + count / 2) / count))
        let boundary = scratch.withMemoryRebound(to: UInt32.self, capacity: samples) { keys in
            for i in 0..<samples { keys[i] = orderKey(values[i * stride]) }
            return kthLargest(sampledK, of: keys, count: samples).key
        }
        let limit = SIMD16<UInt32>(repeating: boundary)
        return collect(count, into: indices) { orderKeys(UnsafeRawPointer(values + $0)) .>= limit } tail: { orderKey(values[$0]) >= boundary }
    }

    /// Writes the indices i with |values[i]| > threshold to `indices`; returns how many.
    public static func above(_ threshold: Float, magnitudesOf values: UnsafePointer<Float>, count: Int,
                             into indices: UnsafeMutablePointer<Int32>) -> Int {
        let limit = SIMD16<Float>(repeating: threshold)
        return collect(count, into: indices) { i in
            let v = UnsafeRawPointer(values + i).loadUnaligned(as: SIMD16<Float>.self)
            return (v .> limit) .| (v .< -limit)
        } tail: { abs(values[$0]) > threshold }
    }

    /// Writes the indices i < count, ascending, that are chosen (`block(i)`: the choice for
    /// i..<i+16 as lanes; `tail(i)`: for one index past the last full block); returns how many.
    /// A block with nothing chosen costs one vector compare: selections keep a few percent of a
    /// vocabulary or a third of the neurons, where a branch-free store per index was 1.5-2x as
    /// slow over Qwen2.5's 152k logits.
    @inline(__always)
    private static func collect(_ count: Int, into indices: UnsafeMutablePointer<Int32>, block: (Int) -> SIMDMask<SIMD16<Int32>>,
                                tail: (Int) -> Bool) -> Int {
        let bits = SIMD16<UInt32>(1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7,
                                  1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15)
        var n = 0, j = 0
        while j + 16 <= count {
            var mask = SIMD16<UInt32>.zero.replacing(with: bits, where: block(j)).wrappedSum()
            while mask != 0 {
                indices[n] = Int32(j + mask.trailingZeroBitCount)
                n += 1
                mask &= mask &- 1
            }
            j += 16
        }
        for i in j..<count where tail(i) {
            indices[n] = Int32(i)
            n += 1
        }
        return n
    }

    /// The k-th largest of `count` keys (1-based) and how many of the keys equal to it are among
    /// the k largest. Radix selection, most significant bits first (11, 11, then 10): three
    /// histogram passes without data-dependent branches, where a quickselect mispredicts its
    /// way to tens of cycles per value.
    static func kthLargest(_ k: Int, of keys: UnsafePointer<UInt32>, count: Int) -> (key: UInt32, ties: Int) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 1 << 11) { histogram in
            // `rank` is the k-th key's position (1-based) among the keys sharing the bits found so far.
            var prefix: UInt32 = 0, known: UInt32 = 0, rank = Int32(k)
            for pass in 0..<3 {
                let shift: UInt32 = pass == 0 ? 21 : (pass == 1 ? 10 : 0), bins = pass == 2 ? 1 << 10 : 1 << 11
                let mask = UInt32(bins - 1)
                histogram.initialize(repeating: 0)
                for j in 0..<count {
                    let key = keys[j]
                    histogram[Int((key >> shift) & mask)] &+= key & known == prefix ? 1 : 0
                }
                var bin = bins - 1
                while rank > histogram[bin] {
                    rank -= histogram[bin]
                    bin -= 1
                }
                prefix |= UInt32(bin) << shift
                known |= mask << shift
            }
            return (prefix, Int(rank))
        }
    }

    /// `orderKey` of the 16 floats at p.
    @inline(__always)
    static func orderKeys(_ p: UnsafeRawPointer) -> SIMD16<UInt32> {
        let bits = p.loadUnaligned(as: SIMD16<UInt32>.self), sign = SIMD16<UInt32>(repeating: 0x8000_0000)
        return (bits | sign).replacing(with: ~bits, where: bits .>= sign)
    }

    /// A key whose unsigned order is the float's order (-0 just below +0).
    @inline(__always)
    static func orderKey(_ x: Float) -> UInt32 {
        let bits = x.bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }
}
