import CSparrowSIMD

/// The int8 multiply-accumulate every quantised kernel is built on, with VNNI `vpdpbusd`
/// semantics: lane i accumulates the four products of bytes 4i..4i+3 (unsigned x signed).
/// Kernels are generic over it so one source yields the VNNI path and the portable path.
protocol Int8DotProduct {
    static func dot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32>
    static func dot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32>
    /// `dot` for unsigned bytes below 128 (quants of up to 7 bits), which some instruction
    /// sets sum in fewer steps.
    static func narrowDot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32>
    static func narrowDot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32>
    /// The 64 bits as bytes, 1 where the bit is set (bit i -> byte i).
    static func bitBytes(_ bits: UInt64) -> SIMD64<UInt8>
    /// acc + small * scale, exact for |small| < 2^15 and `scale` a 16-bit signed value in the
    /// low half of each lane with the high half zero (a "scale word": scale & 0xFFFF).
    static func scaledAdd(_ acc: SIMD16<Int32>, _ small: SIMD16<Int32>, _ scale: SIMD16<Int32>) -> SIMD16<Int32>
    /// acc + lo16(a) * lo16(b) + hi16(a) * hi16(b) per lane (signed 16-bit halves; vpdpwssd).
    static func wordPairDot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32>
    /// The signed products of int8 weights stored offset-binary (byte = w + 128, as Q8_0's
    /// are read) with s, four per lane: `dot` less the offset's share, `offsetSums` (128 times
    /// each lane's four s).
    static func offsetBinaryDot(_ u: SIMD64<UInt8>, _ s: SIMD64<Int8>, offsetSums: SIMD16<Int32>) -> SIMD16<Int32>
}

extension Int8DotProduct {
    /// `wordPairDot` with the scale word's high half zero.
    @inline(__always)
    static func scaledAdd(_ acc: SIMD16<Int32>, _ small: SIMD16<Int32>, _ scale: SIMD16<Int32>) -> SIMD16<Int32> {
        wordPairDot(acc, small, scale)
    }
    @inline(__always)
    static func narrowDot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32> { dot(acc, u, s) }
    @inline(__always)
    static func narrowDot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32> { dot(acc, u, s) }
    @inline(__always)
    static func offsetBinaryDot(_ u: SIMD64<UInt8>, _ s: SIMD64<Int8>, offsetSums: SIMD16<Int32>) -> SIMD16<Int32> {
        dot(.zero, u, s) &- offsetSums
    }
}

/// The instruction set the quantised kernels run with, chosen at run time.
public enum DotInstructions: String, Sendable, CaseIterable {
    case vnni = "AVX512_VNNI", avx2 = "AVX2", portable = "portable SIMD"

    /// The fastest this CPU (and this build) runs.
    public static let best: DotInstructions = cpuHasVNNI ? .vnni : cpuHasAVX2 ? .avx2 : .portable

    /// Whether this CPU runs them.
    public var isAvailable: Bool {
        switch self {
        case .vnni: cpuHasVNNI
        case .avx2: cpuHasAVX2
        case .portable: true
        }
    }
}

/// AVX-512 VNNI: one `vpdpbusd` each. Only used after `cpuHasVNNI` said yes.
enum VNNIDot: Int8DotProduct {
    @inline(__always)
    static func dot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32> {
        sparrow_dpbusd256(acc, u, s)
    }
    @inline(__always)
    static func dot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32> {
        sparrow_dpbusd512(acc, u, s)
    }
    @inline(__always)
    static func bitBytes(_ bits: UInt64) -> SIMD64<UInt8> { sparrow_bit_bytes64(bits) }
    @inline(__always)
    static func wordPairDot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        sparrow_dpwssd512(acc, a, b)
    }
}

/// AVX2: `vpmaddubsw` and `vpmaddwd` per 256 bits (one pair for narrow bytes, two for any).
/// Only used after `cpuHasAVX2` said yes.
enum AVX2Dot: Int8DotProduct {
    @inline(__always)
    static func dot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32> { sparrow_avx2_dpbusd256(acc, u, s) }
    @inline(__always)
    static func dot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32> { sparrow_avx2_dpbusd512(acc, u, s) }
    @inline(__always)
    static func narrowDot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32> { sparrow_avx2_dpbusd256_narrow(acc, u, s) }
    @inline(__always)
    static func narrowDot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32> { sparrow_avx2_dpbusd512_narrow(acc, u, s) }
    @inline(__always)
    static func bitBytes(_ bits: UInt64) -> SIMD64<UInt8> { sparrow_avx2_bit_bytes64(bits) }
    @inline(__always)
    static func wordPairDot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        sparrow_avx2_dpwssd512(acc, a, b)
    }
    /// The signs moved onto s, so that one narrow multiply-add pair serves where `dot`'s
    /// full-range bytes need two.
    @inline(__always)
    static func offsetBinaryDot(_ u: SIMD64<UInt8>, _ s: SIMD64<Int8>, offsetSums _: SIMD16<Int32>) -> SIMD16<Int32> {
        sparrow_avx2_signed_dot512(u, s)
    }
}

/// Plain Swift SIMD, for CPUs without AVX2: each int32 lane multiplies its four byte pairs,
/// extracted with shifts (only lane-wise operators, which Swift inlines).
enum PortableDot: Int8DotProduct {
    @inline(__always)
    static func dot(_ acc: SIMD8<Int32>, _ u: SIMD32<UInt8>, _ s: SIMD32<Int8>) -> SIMD8<Int32> {
        bytePairProducts(acc, unsafeBitCast(u, to: SIMD8<Int32>.self), unsafeBitCast(s, to: SIMD8<Int32>.self))
    }
    @inline(__always)
    static func dot(_ acc: SIMD16<Int32>, _ u: SIMD64<UInt8>, _ s: SIMD64<Int8>) -> SIMD16<Int32> {
        bytePairProducts(acc, unsafeBitCast(u, to: SIMD16<Int32>.self), unsafeBitCast(s, to: SIMD16<Int32>.self))
    }
    @inline(__always)
    static func bitBytes(_ bits: UInt64) -> SIMD64<UInt8> {
        var bytes = SIMD64<UInt8>()
        for i in 0..<64 { bytes[i] = UInt8(truncatingIfNeeded: bits &>> UInt64(i)) & 1 }
        return bytes
    }
    @inline(__always)
    static func scaledAdd(_ acc: SIMD16<Int32>, _ small: SIMD16<Int32>, _ scale: SIMD16<Int32>) -> SIMD16<Int32> {
        acc &+ small &* ((scale &<< 16) &>> 16)
    }
    @inline(__always)
    static func wordPairDot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        acc &+ ((a &<< 16) &>> 16) &* ((b &<< 16) &>> 16) &+ (a &>> 16) &* (b &>> 16)
    }
    /// acc + sum over the 4 bytes k of each lane of unsigned(u byte k) * signed(s byte k).
    @inline(__always)
    static func bytePairProducts<V: SIMD>(_ acc: V, _ u: V, _ s: V) -> V where V.Scalar == Int32 {
        var acc = acc
        acc &+= (u & 0xFF) &* ((s &<< 24) &>> 24)
        acc &+= ((u &>> 8) & 0xFF) &* ((s &<< 16) &>> 24)
        acc &+= ((u &>> 16) & 0xFF) &* ((s &<< 8) &>> 24)
        acc &+= ((u &>> 24) & 0xFF) &* (s &>> 24)
        return acc
    }
}

/// Whether this CPU has AVX-512 with VNNI (checked once).
let cpuHasVNNI: Bool = sparrow_cpu_has_avx512_vnni() != 0
/// Whether this CPU has AVX2 (checked once).
let cpuHasAVX2: Bool = sparrow_cpu_has_avx2() != 0

extension UnsafeRawPointer {
    @inline(__always) func simd<V: SIMD>(_: V.Type, at offset: Int = 0) -> V { loadUnaligned(fromByteOffset: offset, as: V.self) }
}

/// How many tokens a row kernel serves per pass over the weights: a batch of two (a draft
/// model catching up on two tokens, two server slots decoding) then reads each weight once.
protocol RowTokens { static var count: Int { get } }
enum OneToken: RowTokens { static var count: Int { 1 } }
enum TwoTokens: RowTokens { static var count: Int { 2 } }

/// The four rows a quad kernel fetches ahead; `contiguous` when each follows the last.
struct QuadPrefetch {
    let rows: Quad<UnsafeRawPointer>
    let contiguous: Bool
}

/// Dot products of one encoded weight row with one token's quantised activations.
/// `blocks` counts 32-element blocks (Q8Row kernels) or 256-element super-blocks (Q8KRow).
enum QuantDot<D: Int8DotProduct> {
    // The 32-element kernels round exactly as llama.cpp's AVX2 kernels do, since a last-bit
    // difference anywhere can flip a later int8 rounding: eight int32 lanes of four products
    // each, exact; each block adds (dw * dx) * lane to eight f32 accumulators with one fused
    // multiply-add; the lanes are summed in hsum_float_8's order. Q4_1's minimum term
    // (m * s per block) is a separate scalar sum added last, as there.
    // Four rows run together, two per 512-bit vector (one per half): the activation block is
    // loaded once for all four, the four weight scales are converted and multiplied at once,
    // and the two vectors' multiply-add chains overlap (decoding one row at a time, then two,
    // left these formats bound by instruction count and that chain's latency, not memory).
    // With two tokens, each block's weights are unpacked once for both.
    @inline(__always)
    static func q8BlockQuad<F: Q8BlockFormat, T: RowTokens>(_ w: Quad<UnsafeRawPointer>, _ x: (Q8Row, Q8Row), blocks: Int,
                                                            prefetching next: QuadPrefetch?, _: F.Type, _: T.Type) -> (SIMD4<Float>, SIMD4<Float>) {
        var sums = (QuadSums(), QuadSums())
        for b in 0..<blocks {
            let offset = F.blockBytes * b
            // A later quad's four rows, at the pace this quad's are read: contiguous rows as
            // one stretch (four separate fetches slow the dense product by a sixth).
            if let next {
                let rows = next.rows
                if next.contiguous {
                    sparrow_prefetch(rows.0 + 4 * offset, 4 * F.blockBytes)
                } else {
                    sparrow_prefetch(rows.0 + offset, F.blockBytes)
                    sparrow_prefetch(rows.1 + offset, F.blockBytes)
                    sparrow_prefetch(rows.2 + offset, F.blockBytes)
                    sparrow_prefetch(rows.3 + offset, F.blockBytes)
                }
            }
            let block = (w.0 + offset, w.1 + offset, w.2 + offset, w.3 + offset)
            let weights = (sparrow_concat_u8x32(F.quants(block.0), F.quants(block.1)), sparrow_concat_u8x32(F.quants(block.2), F.quants(block.3)))
            let scales = F.scales(block), minimums = F.hasMinimum ? F.minimums(block) : SIMD4()
            sums.0.add(weights, scales: scales, minimums: minimums, x.0, block: b, F.self)
            if T.count > 1 { sums.1.add(weights, scales: scales, minimums: minimums, x.1, block: b, F.self) }
        }
        return (sums.0.total(F.self), T.count > 1 ? sums.1.total(F.self) : SIMD4())
    }

    /// One token's accumulators in `q8BlockQuad`: rows 0 and 1 in the halves of `low`, 2 and 3 in `high`.
    struct QuadSums {
        var low = SIMD16<Float>(), high = SIMD16<Float>(), minimums = SIMD4<Float>()

        @inline(__always)
        mutating func add<F: Q8BlockFormat>(_ weights: (SIMD64<UInt8>, SIMD64<UInt8>), scales: SIMD4<Float>, minimums weightMinimums: SIMD4<Float>,
                                            _ x: Q8Row, block b: Int, _: F.Type) {
            let xs = x.scales[b], xq = unsafeBitCast(sparrow_broadcast32(x.quants + 32 * b), to: SIMD64<Int8>.self)
            let offsets = F.offset != 0 ? unsafeBitCast(sparrow_broadcast32(x.offsetSums + b), to: SIMD16<Int32>.self) : .zero
            // Only Q8_0's bytes (offset 128) reach 128.
            let dots = F.offset == 128
                ? (D.offsetBinaryDot(weights.0, xq, offsetSums: offsets), D.offsetBinaryDot(weights.1, xq, offsetSums: offsets))
                : (D.narrowDot(.zero, weights.0, xq) &- offsets, D.narrowDot(.zero, weights.1, xq) &- offsets)
            let products = scales * xs.x
            low.addProduct(sparrow_i32x16_to_f32(dots.0), sparrow_halves01_f32(products))
            high.addProduct(sparrow_i32x16_to_f32(dots.1), sparrow_halves23_f32(products))
            if F.hasMinimum { minimums.addProduct(weightMinimums, SIMD4(repeating: xs.y)) }
        }

        @inline(__always)
        func total<F: Q8BlockFormat>(_: F.Type) -> SIMD4<Float> {
            let sums = SIMD4(sparrow_reduce_add_f32x8(low.lowHalf), sparrow_reduce_add_f32x8(low.highHalf),
                             sparrow_reduce_add_f32x8(high.lowHalf), sparrow_reduce_add_f32x8(high.highHalf))
            return F.hasMinimum ? sums + minimums : sums
        }
    }

    /// Q4_K as llama.cpp's gemv sums it for weights it repacks (on x86, Q4_K matrices with
    /// rows % 8 == 0): one f32 accumulator for the scaled quants and one for the minimums, fed
    /// per super-block. (Its gemm feeds them per 64-element pair: `PanelDot.q4_K`.)
    @inline(__always)
    static func q4_K(_ w: UnsafeRawPointer, _ x: Q8KRow, blocks: Int) -> Float {
        var acc: Float = 0, accMin: Float = 0
        for b in 0..<blocks {
            let block = w + 144 * b
            let scaleW = block.float16(at: 0) * x.scales[b], minW = block.float16(at: 2) * x.scales[b]
            let (scales, mins) = unpackQ4KScales(block + 4)
            let xq = UnsafeRawPointer(x.quants + 256 * b)
            // Integer sums are exact, so each sums its lanes once per super-block.
            var scaled = SIMD16<Int32>()
            for pair in 0..<4 {
                let u = sparrow_nibbles64(block.simd(SIMD32<UInt8>.self, at: 16 + 32 * pair))
                scaled &+= D.narrowDot(.zero, u, xq.simd(SIMD64<Int8>.self, at: 64 * pair)) &* sparrow_repeat8x2(Int32(scales[2 * pair]), Int32(scales[2 * pair + 1]))
            }
            let groupSums = sparrow_i16x16_to_i32(UnsafeRawPointer(x.groupSums + 16 * b).simd(SIMD16<Int16>.self))
            let blockSum = sparrow_reduce_add_i32x16(scaled)
            let blockMin = sparrow_reduce_add_i32x16(groupSums &* sparrow_repeat2_u8x8(mins))
            acc = acc.addingProduct(Float(blockSum), scaleW)
            accMin = accMin.addingProduct(Float(blockMin), minW)
        }
        return acc - accMin
    }

    /// Q6_K: per 64 elements one 512-bit dot gives 4 lanes per 16-element sub-block, weighted by
    /// the int8 scales, the -32 offset removed per lane (each dot starts from the token's
    /// -32 * (sum of each 4 quants), `Q8KRow.offsetSums`). Folding the 16 lanes to 8 gives ggml's
    /// AVX2 vec_dot partition (lane k: bytes 4k..4k+3 of every 32-element vector).
    @inline(__always)
    static func q6KLanes(_ block: UnsafeRawPointer, _ xq: UnsafeRawPointer, _ offsets: UnsafeRawPointer) -> SIMD8<Int32> {
        let scales = (block + 192).assumingMemoryBound(to: Int8.self)
        var sum = SIMD16<Int32>()
        for half in 0..<2 {
            let low = block.simd(SIMD64<UInt8>.self, at: 64 * half)
            let high = block.simd(SIMD32<UInt8>.self, at: 128 + 32 * half)
            for pair in 0..<2 {
                let xs = xq.simd(SIMD64<Int8>.self, at: 128 * half + 64 * pair)
                let dot = D.narrowDot(offsets.simd(SIMD16<Int32>.self, at: 128 * half + 64 * pair), sparrow_q6k_quants(low, high, Int32(4 * pair)), xs)
                sum &+= dot &* sparrow_repeat4x4(scales + 8 * half + 4 * pair)
            }
        }
        return sum.lowHalf &+ sum.highHalf
    }

    /// Q6_K as llama.cpp's vec_dot sums it (batches under 8 rows): eight f32 lanes, one fused
    /// multiply-add per super-block with dA * dW, then hsum_float_8.
    @inline(__always)
    static func q6_K(_ w: UnsafeRawPointer, _ x: Q8KRow, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = w + 210 * b
            let lanes = q6KLanes(block, UnsafeRawPointer(x.quants + 256 * b), UnsafeRawPointer(x.offsetSums + 64 * b))
            acc.addProduct(sparrow_i32x8_to_f32(lanes), SIMD8(repeating: x.scales[b] * block.float16(at: 208)))
        }
        return sparrow_reduce_add_f32x8(acc)
    }
}

/// f32 dot products of a float-encoded weight row (F32, F16, BF16) with float activations.
enum FloatDot {
    @inline(__always)
    static func dot(_ type: TensorType, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
        switch type {
        case .f32: dot(w, x, count: count, elementBytes: 4) { $0.simd(SIMD16<Float>.self, at: $1) } scalar: { $0.loadUnaligned(fromByteOffset: $1, as: Float.self) }
        case .f16: dot(w, x, count: count, elementBytes: 2) { sparrow_f16x16_to_f32($0.simd(SIMD16<Float16>.self, at: $1)) } scalar: { $0.float16(at: $1) }
        default: dot(w, x, count: count, elementBytes: 2) { sparrow_bf16x16_to_f32($0.simd(SIMD16<UInt16>.self, at: $1)) } scalar: { Float(bitPattern: UInt32($0.loadUnaligned(fromByteOffset: $1, as: UInt16.self)) << 16) }
        }
    }

    /// Four independent accumulators hide the FMA latency; the tail is scalar.
    @inline(__always)
    static func dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int, elementBytes: Int,
                    load: (UnsafeRawPointer, Int) -> SIMD16<Float>, scalar: (UnsafeRawPointer, Int) -> Float) -> Float {
        let xr = UnsafeRawPointer(x)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var i = 0
        while i + 64 <= count {
            a0.addProduct(load(w, i * elementBytes), xr.simd(SIMD16<Float>.self, at: 4 * i))
            a1.addProduct(load(w, (i + 16) * elementBytes), xr.simd(SIMD16<Float>.self, at: 4 * (i + 16)))
            a2.addProduct(load(w, (i + 32) * elementBytes), xr.simd(SIMD16<Float>.self, at: 4 * (i + 32)))
            a3.addProduct(load(w, (i + 48) * elementBytes), xr.simd(SIMD16<Float>.self, at: 4 * (i + 48)))
            i += 64
        }
        while i + 16 <= count {
            a0.addProduct(load(w, i * elementBytes), xr.simd(SIMD16<Float>.self, at: 4 * i))
            i += 16
        }
        var total = sparrow_reduce_add_f32x16((a0 + a1) + (a2 + a3))
        while i < count {
            total += scalar(w, i * elementBytes) * x[i]
            i += 1
        }
        return total
    }
}
