import CSparrowSIMD

/// How many int32 lanes of a 512-bit panel vector one token takes (see TokenPanel.swift): with
/// 1, lane = token and each dot product covers 4 elements; with 2 or 4 (batches of up to 8 or
/// 4 tokens), a token's lanes cover 8 or 16 consecutive elements, so small batches still fill
/// every lane. Each lane then holds part of its token's sum, and the lanes are folded after
/// the exact integer stages, in the order that keeps float rounding that of the one-lane form.
protocol PanelLanes {
    static var perToken: Int { get }
    /// The 4 * perToken weight bytes at p, repeated to fill 64 bytes.
    static func broadcast(_ p: UnsafeRawPointer) -> SIMD64<UInt8>
    /// Each token's lanes summed into every one of them (lane k with k + perToken/2 first).
    static func fold(_ v: SIMD16<Float>) -> SIMD16<Float>
    static func fold(_ v: SIMD16<Int32>) -> SIMD16<Int32>
}

enum OneLane: PanelLanes {
    static var perToken: Int { 1 }
    @inline(__always) static func broadcast(_ p: UnsafeRawPointer) -> SIMD64<UInt8> { sparrow_broadcast4(p) }
    @inline(__always) static func fold(_ v: SIMD16<Float>) -> SIMD16<Float> { v }
    @inline(__always) static func fold(_ v: SIMD16<Int32>) -> SIMD16<Int32> { v }
}

enum TwoLanes: PanelLanes {
    static var perToken: Int { 2 }
    @inline(__always) static func broadcast(_ p: UnsafeRawPointer) -> SIMD64<UInt8> { sparrow_broadcast8(p) }
    @inline(__always) static func fold(_ v: SIMD16<Float>) -> SIMD16<Float> { sparrow_fold2_f32x16(v) }
    @inline(__always) static func fold(_ v: SIMD16<Int32>) -> SIMD16<Int32> { sparrow_fold2_i32x16(v) }
}

enum FourLanes: PanelLanes {
    static var perToken: Int { 4 }
    @inline(__always) static func broadcast(_ p: UnsafeRawPointer) -> SIMD64<UInt8> { sparrow_broadcast16(p) }
    @inline(__always) static func fold(_ v: SIMD16<Float>) -> SIMD16<Float> { sparrow_fold4_f32x16(v) }
    @inline(__always) static func fold(_ v: SIMD16<Int32>) -> SIMD16<Int32> { sparrow_fold4_i32x16(v) }
}

/// Two weight rows at a time against one token panel: 16 lanes per row, each token's result in
/// its first lane, rounded exactly as the `QuantDot` kernel whose order it follows rounds it.
/// Each 64-byte activation load serves both rows. `unpacked` holds each row's quants as bytes
/// in element order (from `PanelRow`), read 4 * perToken at a time and broadcast to every token.
enum PanelDot<D: Int8DotProduct> {
    typealias Pair<T> = (T, T)

    /// The eight f32 lanes of ggml's 8-lane sums, as `sets` = 8 / perToken accumulators of 16
    /// panel lanes (lane k of set j: ggml lane perToken * j + k), summed in hsum_float_8's
    /// order ((0+4)+(2+6)) + ((1+5)+(3+7)): sets folded in halves, then each token's lanes.
    @inline(__always)
    static func hsum8Order<L: PanelLanes>(_ a0: SIMD16<Float>, _ a1: SIMD16<Float>, _ a2: SIMD16<Float>, _ a3: SIMD16<Float>,
                                          _ a4: SIMD16<Float>, _ a5: SIMD16<Float>, _ a6: SIMD16<Float>, _ a7: SIMD16<Float>, _: L.Type) -> SIMD16<Float> {
        var (a0, a1, a2, a3) = (a0, a1, a2, a3)
        let sets = 8 / L.perToken
        if sets == 8 { (a0, a1, a2, a3) = (a0 + a4, a1 + a5, a2 + a6, a3 + a7) }
        if sets >= 4 { (a0, a1) = (a0 + a2, a1 + a3) }
        if sets >= 2 { a0 = a0 + a1 }
        return L.fold(a0)
    }

    @inline(__always)
    static func weights<L: PanelLanes>(_ p: UnsafeRawPointer, _: L.Type) -> SIMD64<Int8> { unsafeBitCast(L.broadcast(p), to: SIMD64<Int8>.self) }
    @inline(__always)
    static func int32s<L: PanelLanes>(_ p: UnsafeRawPointer, _: L.Type) -> SIMD16<Int32> { unsafeBitCast(L.broadcast(p), to: SIMD16<Int32>.self) }

    /// `QuantDot.q8Block` (llama.cpp rounds these formats alike for any batch size). Vector i of
    /// a block covers elements 4 * perToken * i ..., ggml lanes perToken * i + k: accumulator
    /// set i. The weights are the signed operand (value - offset) and the activations the
    /// unsigned one (quant + 128); each lane starts from -128 * (sum of its 4 weights).
    @inline(__always)
    static func q8Block<F: Q8BlockFormat, L: PanelLanes>(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8Panel,
                                                          blocks: Int, prefetching next: Pair<UnsafeRawPointer>?, _: F.Type, _: L.Type) -> Pair<SIMD16<Float>> {
        // Eight named accumulators per row stay in registers.
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        var b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0
        var minimums = (a0, a0)
        let sets = 8 / L.perToken, width = 4 * L.perToken
        let corrections = (unpacked.0 + 32 * blocks, unpacked.1 + 32 * blocks)
        let xq = UnsafeRawPointer(x.quants)
        for b in 0..<blocks {
            prefetch(next, F.blockBytes * b, F.blockBytes)
            let blocks = (rows.0 + F.blockBytes * b, rows.1 + F.blockBytes * b)
            let dx = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let scales = (dx * SIMD16(repeating: F.scale(blocks.0)), dx * SIMD16(repeating: F.scale(blocks.1)))
            @inline(__always) func add(_ first: inout SIMD16<Float>, _ second: inout SIMD16<Float>, _ i: Int) {
                let v = sets * b + i, at = width * v
                let xv = xq.simd(SIMD64<UInt8>.self, at: 64 * v)
                let lane0 = D.dot(int32s(corrections.0 + at, L.self), xv, weights(unpacked.0 + at, L.self))
                let lane1 = D.dot(int32s(corrections.1 + at, L.self), xv, weights(unpacked.1 + at, L.self))
                first.addProduct(sparrow_i32x16_to_f32(lane0), scales.0)
                second.addProduct(sparrow_i32x16_to_f32(lane1), scales.1)
            }
            add(&a0, &b0, 0)
            if sets > 1 { add(&a1, &b1, 1) }
            if sets > 2 { add(&a2, &b2, 2); add(&a3, &b3, 3) }
            if sets > 4 { add(&a4, &b4, 4); add(&a5, &b5, 5); add(&a6, &b6, 6); add(&a7, &b7, 7) }
            if F.hasMinimum {
                let s = UnsafeRawPointer(x.sums).simd(SIMD16<Float>.self, at: 64 * b)
                minimums.0.addProduct(SIMD16(repeating: F.minimum(blocks.0)), s)
                minimums.1.addProduct(SIMD16(repeating: F.minimum(blocks.1)), s)
            }
        }
        let sums = (hsum8Order(a0, a1, a2, a3, a4, a5, a6, a7, L.self), hsum8Order(b0, b1, b2, b3, b4, b5, b6, b7, L.self))
        return F.hasMinimum ? (sums.0 + minimums.0, sums.1 + minimums.1) : sums
    }

    /// Q4_K. `perPair`: llama.cpp's repacked-gemm order (a float multiply-add per 64-element
    /// pair of sub-blocks); otherwise `QuantDot.q4_K`'s (an exact integer sum per super-block,
    /// then one). Each token's lanes are folded as integers, which is exact. Scales, minimums
    /// and the two f16 factors come decoded from `PanelRow.unpackQ4_K`.
    @inline(__always)
    static func q4_K<L: PanelLanes>(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8KPanel, blocks: Int,
                                    perPair: Bool, prefetching next: Pair<UnsafeRawPointer>?, _: L.Type) -> Pair<SIMD16<Float>> {
        var acc = (SIMD16<Float>(), SIMD16<Float>()), accMin = acc
        let xq = UnsafeRawPointer(x.quants), width = 4 * L.perToken, vectors = 32 / width
        for b in 0..<blocks {
            prefetch(next, 144 * b, 144)
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let meta = (unpacked.0 + PanelRow.q4KMetadata(block: b), unpacked.1 + PanelRow.q4KMetadata(block: b))
            let d = (SIMD16(repeating: meta.0.load(fromByteOffset: 64, as: Float.self)) * dA,
                     SIMD16(repeating: meta.1.load(fromByteOffset: 64, as: Float.self)) * dA)
            let dMin = (SIMD16(repeating: meta.0.load(fromByteOffset: 68, as: Float.self)) * dA,
                        SIMD16(repeating: meta.1.load(fromByteOffset: 68, as: Float.self)) * dA)
            var blockSum = (SIMD16<Int32>(), SIMD16<Int32>()), blockMin = blockSum
            @inline(__always) func add(_ sub: Pair<SIMD16<Int32>>, _ meta: UnsafeRawPointer, pair: Int,
                                       _ d: SIMD16<Float>, _ dMin: SIMD16<Float>, _ acc: inout SIMD16<Float>, _ accMin: inout SIMD16<Float>,
                                       _ sum: inout SIMD16<Int32>, _ minSum: inout SIMD16<Int32>) {
                let a = 2 * pair
                // A lane's sub-block sum is at most 32 / perToken * 15 * 128 in size, a 16-bit
                // multiply from two lanes per token on; a group sum (at most 32 * 128) always.
                @inline(__always) func scaled(_ acc: SIMD16<Int32>, _ sum: SIMD16<Int32>, _ scale: UnsafeRawPointer) -> SIMD16<Int32> {
                    L.perToken >= 2 ? D.scaledAdd(acc, sum, sparrow_broadcast_i32(scale)) : acc &+ sum &* sparrow_broadcast_i32(scale)
                }
                let minimums = D.scaledAdd(D.scaledAdd(perPair ? .zero : minSum, subBlockSum(x, 8 * b + a), sparrow_broadcast_i32(meta + 32 + 4 * a)),
                                           subBlockSum(x, 8 * b + a + 1), sparrow_broadcast_i32(meta + 36 + 4 * a))
                let sums = scaled(scaled(perPair ? .zero : sum, sub.0, meta + 4 * a), sub.1, meta + 4 * a + 4)
                if perPair {
                    acc.addProduct(sparrow_i32x16_to_f32(L.fold(sums)), d)
                    accMin.addProduct(sparrow_i32x16_to_f32(minimums), dMin)
                } else {
                    sum = sums
                    minSum = minimums
                }
            }
            let quants = (rows.0 + 144 * b + 16, rows.1 + 144 * b + 16)
            for pair in 0..<4 {
                // s0, s1: sub-blocks 2 * pair and 2 * pair + 1 of the first row; t0, t1: of the second.
                // One broadcast of packed bytes holds the same elements of both sub-blocks (low
                // and high nibbles), split in registers.
                var s0 = SIMD16<Int32>(), s1 = s0, t0 = s0, t1 = s0
                for i in 0..<vectors {
                    let at = 256 * b + 64 * pair + width * i, packed = 32 * pair + width * i
                    let low = xq.simd(SIMD64<Int8>.self, at: 64 * (at / width)), high = xq.simd(SIMD64<Int8>.self, at: 64 * ((at + 32) / width))
                    let w0 = L.broadcast(quants.0 + packed), w1 = L.broadcast(quants.1 + packed)
                    s0 = D.narrowDot(s0, sparrow_low_nibbles(w0), low); s1 = D.narrowDot(s1, sparrow_high_nibbles(w0), high)
                    t0 = D.narrowDot(t0, sparrow_low_nibbles(w1), low); t1 = D.narrowDot(t1, sparrow_high_nibbles(w1), high)
                }
                add((s0, s1), meta.0, pair: pair, d.0, dMin.0, &acc.0, &accMin.0, &blockSum.0, &blockMin.0)
                add((t0, t1), meta.1, pair: pair, d.1, dMin.1, &acc.1, &accMin.1, &blockSum.1, &blockMin.1)
            }
            if !perPair {
                acc.0.addProduct(sparrow_i32x16_to_f32(L.fold(blockSum.0)), d.0)
                acc.1.addProduct(sparrow_i32x16_to_f32(L.fold(blockSum.1)), d.1)
                accMin.0.addProduct(sparrow_i32x16_to_f32(blockMin.0), dMin.0)
                accMin.1.addProduct(sparrow_i32x16_to_f32(blockMin.1), dMin.1)
            }
        }
        return (acc.0 - accMin.0, acc.1 - accMin.1)
    }

    /// Fetches the bytes of the next rows that match this block, so that the fetch proceeds at
    /// the pace the kernel reads (a burst of whole rows stalls it).
    @inline(__always)
    static func prefetch(_ next: Pair<UnsafeRawPointer>?, _ offset: Int, _ bytes: Int) {
        guard let next else { return }
        sparrow_prefetch(next.0 + offset, bytes)
        sparrow_prefetch(next.1 + offset, bytes)
    }

    /// Per token, the sum of the quants of 32-element sub-block `s`.
    @inline(__always)
    static func subBlockSum(_ x: Q8KPanel, _ s: Int) -> SIMD16<Int32> {
        let sums = UnsafeRawPointer(x.groupSums)
        return sums.simd(SIMD16<Int32>.self, at: 128 * s) &+ sums.simd(SIMD16<Int32>.self, at: 128 * s + 64)
    }

    /// Q6_K in llama.cpp's tiled-matmul order (its batches of 8 or more): per super-block an
    /// exact integer sum, the -32 offset removed per 16-element group through the activations'
    /// group sums (after folding, as it counts once per token).
    @inline(__always)
    static func q6_K<L: PanelLanes>(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8KPanel, blocks: Int,
                                    prefetching next: Pair<UnsafeRawPointer>?, _: L.Type) -> Pair<SIMD16<Float>> {
        var acc = (SIMD16<Float>(), SIMD16<Float>())
        let sums = UnsafeRawPointer(x.groupSums), xq = UnsafeRawPointer(x.quants), width = 4 * L.perToken
        for b in 0..<blocks {
            prefetch(next, 210 * b, 210)
            let blocks = (rows.0 + 210 * b, rows.1 + 210 * b)
            let scales = ((blocks.0 + 192).assumingMemoryBound(to: Int8.self), (blocks.1 + 192).assumingMemoryBound(to: Int8.self))
            var totals = (SIMD16<Int32>(), SIMD16<Int32>()), offsets = totals
            for g in 0..<16 {
                var dots = (SIMD16<Int32>(), SIMD16<Int32>())
                for i in 0..<16 / width {
                    let at = 256 * b + 16 * g + width * i
                    let xv = xq.simd(SIMD64<Int8>.self, at: 64 * (at / width))
                    dots = (D.narrowDot(dots.0, L.broadcast(unpacked.0 + at), xv), D.narrowDot(dots.1, L.broadcast(unpacked.1 + at), xv))
                }
                let scale = (SIMD16(repeating: Int32(scales.0[g])), SIMD16(repeating: Int32(scales.1[g])))
                let groupSum = sums.simd(SIMD16<Int32>.self, at: 64 * (16 * b + g))
                totals.0 &+= dots.0 &* scale.0
                totals.1 &+= dots.1 &* scale.1
                offsets.0 &+= groupSum &* scale.0
                offsets.1 &+= groupSum &* scale.1
            }
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let exact = (L.fold(totals.0) &- (offsets.0 &<< 5), L.fold(totals.1) &- (offsets.1 &<< 5))
            acc.0.addProduct(SIMD16(repeating: blocks.0.float16(at: 208)) * sparrow_i32x16_to_f32(exact.0), dA)
            acc.1.addProduct(SIMD16(repeating: blocks.1.float16(at: 208)) * sparrow_i32x16_to_f32(exact.1), dA)
        }
        return acc
    }

    /// Q6_K in `QuantDot.q6_K`'s order (one-token calls): ggml's eight lanes per token (lane k
    /// sums the 4-element groups k, k+8, ...) as exact integers per super-block, in sets as in
    /// `q8Block`. The quants are built in registers from the packed row: chunk c of each
    /// 32-element quarter (4 * perToken elements at c * 4 * perToken) shares its low-nibble and
    /// bit-pair bytes with the same chunk of the other quarters, and always falls in set c. The
    /// quants are the unsigned operand and the activations the signed one, each lane starting
    /// from -32 * (sum of its 4 activations), so a lane's dot is at most 4 * 32 * 128 in size
    /// and is scaled by a 16-bit multiply.
    @inline(__always)
    static func q6_KSingleToken<L: PanelLanes>(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8KPanel, blocks: Int,
                                               prefetching next: Pair<UnsafeRawPointer>?, _: L.Type) -> Pair<SIMD16<Float>> {
        let width = 4 * L.perToken, chunks = 32 / width
        let xq = UnsafeRawPointer(x.quants)
        // Float sets, touched once per super-block (they may live in memory), per row.
        var f0 = (SIMD16<Float>(), SIMD16<Float>()), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0
        for b in 0..<blocks {
            prefetch(next, 210 * b, 210)
            let blocks = (rows.0 + 210 * b, rows.1 + 210 * b), scales = (unpacked.0 + 64 * b, unpacked.1 + 64 * b)
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let scale = (dA * SIMD16(repeating: blocks.0.float16(at: 208)), dA * SIMD16(repeating: blocks.1.float16(at: 208)))
            for c in 0..<chunks {
                // A partial sum per quarter: four independent multiply-add chains per row.
                var t0 = (SIMD16<Int32>(), SIMD16<Int32>()), t1 = t0, t2 = t0, t3 = t0
                for h in 0..<2 {
                    let at = 64 * h + width * c, bits = 128 + 32 * h + width * c
                    let low = ((L.broadcast(blocks.0 + at), L.broadcast(blocks.0 + at + 32)), (L.broadcast(blocks.1 + at), L.broadcast(blocks.1 + at + 32)))
                    let high = (L.broadcast(blocks.0 + bits), L.broadcast(blocks.1 + bits))
                    @inline(__always) func add(_ t: inout (SIMD16<Int32>, SIMD16<Int32>), quarter k: Int) {
                        let element = 128 * h + 32 * k + width * c, vector = 64 * ((256 * b + element) / width)
                        let xv = xq.simd(SIMD64<Int8>.self, at: vector), start = SIMD16<Int32>() &- D.narrowDot(.zero, SIMD64(repeating: 32), xv)
                        let q = (sparrow_q6k_quarter(k % 2 == 0 ? low.0.0 : low.0.1, high.0, Int32(k)),
                                 sparrow_q6k_quarter(k % 2 == 0 ? low.1.0 : low.1.1, high.1, Int32(k)))
                        let group = 4 * (element / 16)
                        t.0 = D.scaledAdd(t.0, D.narrowDot(start, q.0, xv), sparrow_broadcast_i32(scales.0 + group))
                        t.1 = D.scaledAdd(t.1, D.narrowDot(start, q.1, xv), sparrow_broadcast_i32(scales.1 + group))
                    }
                    add(&t0, quarter: 0)
                    add(&t1, quarter: 1)
                    add(&t2, quarter: 2)
                    add(&t3, quarter: 3)
                }
                let t = ((t0.0 &+ t1.0) &+ (t2.0 &+ t3.0), (t0.1 &+ t1.1) &+ (t2.1 &+ t3.1))
                @inline(__always) func accumulate(_ f: inout (SIMD16<Float>, SIMD16<Float>)) {
                    f.0.addProduct(sparrow_i32x16_to_f32(t.0), scale.0)
                    f.1.addProduct(sparrow_i32x16_to_f32(t.1), scale.1)
                }
                switch c {
                case 0: accumulate(&f0)
                case 1: accumulate(&f1)
                case 2: accumulate(&f2)
                case 3: accumulate(&f3)
                case 4: accumulate(&f4)
                case 5: accumulate(&f5)
                case 6: accumulate(&f6)
                default: accumulate(&f7)
                }
            }
        }
        return (hsum8Order(f0.0, f1.0, f2.0, f3.0, f4.0, f5.0, f6.0, f7.0, L.self),
                hsum8Order(f0.1, f1.1, f2.1, f3.1, f4.1, f5.1, f6.1, f7.1, L.self))
    }
}

/// Weight rows unpacked to one byte per element, in element order, for `PanelDot`.
enum PanelRow {
    /// Q8-block formats: the signed weights (cols bytes), then per 4-element group the int32
    /// -128 * (sum of its 4 weights) that `PanelDot.q8Block` starts each lane from.
    static func unpack<F: Q8BlockFormat, D: Int8DotProduct>(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer, _: F.Type, _: D.Type) {
        for b in 0..<blocks {
            let signed = sparrow_minus_offset32(F.quants(row + F.blockBytes * b), F.offset)
            dst.storeBytes(of: signed, toByteOffset: 32 * b, as: SIMD32<Int8>.self)
            let negated = D.dot(.zero, SIMD32(repeating: 128), signed) &* -1
            dst.storeBytes(of: negated, toByteOffset: 32 * blocks + 32 * b, as: SIMD8<Int32>.self)
        }
    }

    /// Bytes `unpack` writes per row of `cols` elements.
    static func q8BlockBytes(cols: Int) -> Int { 2 * cols }

    /// Q4_K: per super-block its eight scales and eight minimums as int32 (6-bit, so also
    /// scale words for `Int8DotProduct.scaledAdd`) and d and dmin as f32 (`q4KMetadata`),
    /// decoded once per row so that the kernel broadcasts each from memory (the kernel reads
    /// the quants from the row itself).
    static func unpackQ4_K(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer) {
        for b in 0..<blocks {
            let block = row + 144 * b
            let meta = dst + q4KMetadata(block: b)
            meta.storeBytes(of: sparrow_q4k_scales_mins(block + 4), as: SIMD16<Int32>.self)
            meta.storeBytes(of: block.float16(at: 0), toByteOffset: 64, as: Float.self)
            meta.storeBytes(of: block.float16(at: 2), toByteOffset: 68, as: Float.self)
        }
    }

    /// Where super-block `block`'s decoded scales start in an unpacked Q4_K row.
    @inline(__always) static func q4KMetadata(block: Int) -> Int { q4KMetadataBytes * block }
    static let q4KMetadataBytes = 80

    /// Q6_K: the unsigned quants (0...63), 256 bytes per super-block.
    static func unpackQ6_K(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer) {
        for b in 0..<blocks {
            let block = row + 210 * b
            for part in 0..<2 {
                let low = block.simd(SIMD64<UInt8>.self, at: 64 * part)
                let high = block.simd(SIMD32<UInt8>.self, at: 128 + 32 * part)
                for pair in 0..<2 {
                    dst.storeBytes(of: sparrow_q6k_quants(low, high, Int32(4 * pair)), toByteOffset: 256 * b + 128 * part + 64 * pair, as: SIMD64<UInt8>.self)
                }
            }
        }
    }

    /// Q6_K's sixteen scales per super-block as scale words for `Int8DotProduct.scaledAdd` (64
    /// bytes per super-block), for the one-token order, which reads the quants from the row itself.
    static func unpackQ6KScales(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer) {
        for b in 0..<blocks {
            let scales = sparrow_i8x16_to_i32((row + 210 * b).simd(SIMD16<Int8>.self, at: 192)) & 0xFFFF
            dst.storeBytes(of: scales, toByteOffset: 64 * b, as: SIMD16<Int32>.self)
        }
    }
}

/// One weight format's panel kernel, as `MatMul` tiles it: how a row unpacks, and the sums of
/// two rows against one panel.
protocol PanelKernel {
    /// Bytes `unpack` writes per row.
    var unpackedBytes: Int { get }
    func unpack(_ row: UnsafeRawPointer, into dst: UnsafeMutableRawPointer)
    func sums<L: PanelLanes>(_ rows: (UnsafeRawPointer, UnsafeRawPointer), _ unpacked: (UnsafeRawPointer, UnsafeRawPointer), panel: Int,
                             prefetching next: (UnsafeRawPointer, UnsafeRawPointer)?, _: L.Type) -> (SIMD16<Float>, SIMD16<Float>)
}

/// Panels carved from `memory` by `layout`.
struct PanelSource {
    let layout: PanelLayout
    let memory: UnsafeMutableRawPointer
}

struct Q8BlockPanels<F: Q8BlockFormat, D: Int8DotProduct>: PanelKernel {
    let panels: PanelSource
    let blocks: Int
    var unpackedBytes: Int { PanelRow.q8BlockBytes(cols: 32 * blocks) }
    func unpack(_ row: UnsafeRawPointer, into dst: UnsafeMutableRawPointer) { PanelRow.unpack(row, blocks: blocks, into: dst, F.self, D.self) }
    func sums<L: PanelLanes>(_ rows: (UnsafeRawPointer, UnsafeRawPointer), _ unpacked: (UnsafeRawPointer, UnsafeRawPointer), panel: Int,
                             prefetching next: (UnsafeRawPointer, UnsafeRawPointer)?, _: L.Type) -> (SIMD16<Float>, SIMD16<Float>) {
        PanelDot<D>.q8Block(rows, unpacked, panels.layout.q8(panels.memory, panel), blocks: blocks, prefetching: next, F.self, L.self)
    }
}

struct Q4KPanels<D: Int8DotProduct>: PanelKernel {
    let panels: PanelSource
    let blocks: Int
    let order: SummationOrder
    var unpackedBytes: Int { PanelRow.q4KMetadataBytes * blocks }
    func unpack(_ row: UnsafeRawPointer, into dst: UnsafeMutableRawPointer) { PanelRow.unpackQ4_K(row, blocks: blocks, into: dst) }
    func sums<L: PanelLanes>(_ rows: (UnsafeRawPointer, UnsafeRawPointer), _ unpacked: (UnsafeRawPointer, UnsafeRawPointer), panel: Int,
                             prefetching next: (UnsafeRawPointer, UnsafeRawPointer)?, _: L.Type) -> (SIMD16<Float>, SIMD16<Float>) {
        PanelDot<D>.q4_K(rows, unpacked, panels.layout.q8K(panels.memory, panel), blocks: blocks, perPair: order == .referenceBatch, prefetching: next, L.self)
    }
}

struct Q6KPanels<D: Int8DotProduct>: PanelKernel {
    let panels: PanelSource
    let blocks: Int
    let order: SummationOrder
    var unpackedBytes: Int { (order == .singleToken ? 64 : 256) * blocks }
    func unpack(_ row: UnsafeRawPointer, into dst: UnsafeMutableRawPointer) {
        if order == .singleToken { PanelRow.unpackQ6KScales(row, blocks: blocks, into: dst) } else { PanelRow.unpackQ6_K(row, blocks: blocks, into: dst) }
    }
    func sums<L: PanelLanes>(_ rows: (UnsafeRawPointer, UnsafeRawPointer), _ unpacked: (UnsafeRawPointer, UnsafeRawPointer), panel: Int,
                             prefetching next: (UnsafeRawPointer, UnsafeRawPointer)?, _: L.Type) -> (SIMD16<Float>, SIMD16<Float>) {
        let x = panels.layout.q8K(panels.memory, panel)
        return order == .singleToken ? PanelDot<D>.q6_KSingleToken(rows, unpacked, x, blocks: blocks, prefetching: next, L.self)
            : PanelDot<D>.q6_K(rows, unpacked, x, blocks: blocks, prefetching: next, L.self)
    }
}
