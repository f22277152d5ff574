import CSparrowSIMD

/// Two weight rows at a time against one token panel (see TokenPanel.swift): 16 outputs per
/// row, each rounded exactly as the `QuantDot` kernel llama.cpp's batch path matches rounds it.
/// Each 64-byte activation load serves both rows. `unpacked` holds each row's quants as bytes
/// in element order (from `PanelRow`), read four at a time and broadcast to all 16 token lanes.
enum PanelDot<D: Int8DotProduct> {
    typealias Pair<T> = (T, T)

    @inline(__always)
    static func lanes(_ start: SIMD16<Int32>, _ unpacked: UnsafeRawPointer, _ quants: SIMD64<Int8>, group g: Int) -> SIMD16<Int32> {
        D.dot(start, sparrow_broadcast4(unpacked + 4 * g), quants)
    }

    /// `QuantDot.q8Block` for 16 tokens: lane k of each block is 4-element group k. Here the
    /// weights are the signed operand (value - offset, broadcast) and the activations the
    /// unsigned one (quant + 128); each lane starts from -128 * (sum of its 4 weights).
    @inline(__always)
    static func q8Block<F: Q8BlockFormat>(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8Panel, blocks: Int, _: F.Type) -> Pair<SIMD16<Float>> {
        // Eight named accumulators per row (one per lane of ggml's 8-lane sum) stay in registers.
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        var b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0
        var minimums = (a0, a0)
        let corrections = (unpacked.0 + 4 * blocks * 8, unpacked.1 + 4 * blocks * 8)
        let xq = UnsafeRawPointer(x.quants)
        for b in 0..<blocks {
            let blocks = (rows.0 + F.blockBytes * b, rows.1 + F.blockBytes * b)
            let dx = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let scales = (dx * SIMD16(repeating: F.scale(blocks.0)), dx * SIMD16(repeating: F.scale(blocks.1)))
            @inline(__always) func add(_ first: inout SIMD16<Float>, _ second: inout SIMD16<Float>, _ k: Int) {
                let g = 8 * b + k
                let xv = xq.simd(SIMD64<UInt8>.self, at: 64 * g)
                let lane0 = D.dot(sparrow_broadcast_i32(corrections.0 + 4 * g), xv, sparrow_broadcast4_i8(unpacked.0 + 4 * g))
                let lane1 = D.dot(sparrow_broadcast_i32(corrections.1 + 4 * g), xv, sparrow_broadcast4_i8(unpacked.1 + 4 * g))
                first.addProduct(sparrow_i32x16_to_f32(lane0), scales.0)
                second.addProduct(sparrow_i32x16_to_f32(lane1), scales.1)
            }
            add(&a0, &b0, 0); add(&a1, &b1, 1); add(&a2, &b2, 2); add(&a3, &b3, 3)
            add(&a4, &b4, 4); add(&a5, &b5, 5); add(&a6, &b6, 6); add(&a7, &b7, 7)
            if F.hasMinimum {
                let s = UnsafeRawPointer(x.sums).simd(SIMD16<Float>.self, at: 64 * b)
                minimums.0.addProduct(SIMD16(repeating: F.minimum(blocks.0)), s)
                minimums.1.addProduct(SIMD16(repeating: F.minimum(blocks.1)), s)
            }
        }
        // hsum_float_8's order, lane-wise over the tokens.
        let sums = (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), ((b0 + b4) + (b2 + b6)) + ((b1 + b5) + (b3 + b7)))
        return F.hasMinimum ? (sums.0 + minimums.0, sums.1 + minimums.1) : sums
    }

    /// `QuantDot.q4_K`'s order as llama.cpp's repacked gemm feeds it (per 64-element pair), for 16 tokens.
    @inline(__always)
    static func q4_K(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8KPanel, blocks: Int) -> Pair<SIMD16<Float>> {
        var acc = (SIMD16<Float>(), SIMD16<Float>()), accMin = acc
        let xq = UnsafeRawPointer(x.quants)
        for b in 0..<blocks {
            // One accumulator per row and 32-element sub-block, filled one pair of sub-blocks
            // at a time in interleaved order so the dependency chains overlap.
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            @inline(__always) func row(_ r: UnsafeRawPointer, _ u: UnsafeRawPointer, _ acc: inout SIMD16<Float>, _ accMin: inout SIMD16<Float>,
                                       _ sub: Pair<SIMD16<Int32>>, pair: Int) {
                let block = r + 144 * b
                let (scales, mins) = unpackQ4KScales(block + 4)
                let a = 2 * pair
                let total = sub.0 &* SIMD16(repeating: Int32(scales[a])) &+ sub.1 &* SIMD16(repeating: Int32(scales[a + 1]))
                let minTotal = subBlockSum(x, 8 * b + a) &* SIMD16(repeating: Int32(mins[a]))
                    &+ subBlockSum(x, 8 * b + a + 1) &* SIMD16(repeating: Int32(mins[a + 1]))
                acc.addProduct(sparrow_i32x16_to_f32(total), SIMD16(repeating: block.float16(at: 0)) * dA)
                accMin.addProduct(sparrow_i32x16_to_f32(minTotal), SIMD16(repeating: block.float16(at: 2)) * dA)
            }
            for pair in 0..<4 {
                var s0 = SIMD16<Int32>(), s1 = s0, t0 = s0, t1 = s0
                for j in 0..<8 {
                    let g = 64 * b + 16 * pair + j
                    let low = xq.simd(SIMD64<Int8>.self, at: 64 * g), high = xq.simd(SIMD64<Int8>.self, at: 64 * (g + 8))
                    s0 = lanes(s0, unpacked.0, low, group: g); s1 = lanes(s1, unpacked.0, high, group: g + 8)
                    t0 = lanes(t0, unpacked.1, low, group: g); t1 = lanes(t1, unpacked.1, high, group: g + 8)
                }
                row(rows.0, unpacked.0, &acc.0, &accMin.0, (s0, s1), pair: pair)
                row(rows.1, unpacked.1, &acc.1, &accMin.1, (t0, t1), pair: pair)
            }
        }
        return (acc.0 - accMin.0, acc.1 - accMin.1)
    }

    /// Per token, the sum of the quants of 32-element sub-block `s`.
    @inline(__always)
    static func subBlockSum(_ x: Q8KPanel, _ s: Int) -> SIMD16<Int32> {
        let sums = UnsafeRawPointer(x.groupSums)
        return sums.simd(SIMD16<Int32>.self, at: 128 * s) &+ sums.simd(SIMD16<Int32>.self, at: 128 * s + 64)
    }

    /// `QuantDot.q6_K`'s tiled order (llama.cpp's tiled matmul) for 16 tokens; the -32 offset
    /// is removed per 16-element group through the activations' group sums.
    @inline(__always)
    static func q6_K(_ rows: Pair<UnsafeRawPointer>, _ unpacked: Pair<UnsafeRawPointer>, _ x: Q8KPanel, blocks: Int) -> Pair<SIMD16<Float>> {
        var acc = (SIMD16<Float>(), SIMD16<Float>())
        let sums = UnsafeRawPointer(x.groupSums), xq = UnsafeRawPointer(x.quants)
        for b in 0..<blocks {
            let blocks = (rows.0 + 210 * b, rows.1 + 210 * b)
            let scales = ((blocks.0 + 192).assumingMemoryBound(to: Int8.self), (blocks.1 + 192).assumingMemoryBound(to: Int8.self))
            var totals = (SIMD16<Int32>(), SIMD16<Int32>())
            for g in 0..<16 {
                let offset = SIMD16<Int32>() &- (sums.simd(SIMD16<Int32>.self, at: 64 * (16 * b + g)) &<< 5)
                var dots = (offset, offset)
                for j in 0..<4 {
                    let group = 64 * b + 4 * g + j
                    let xv = xq.simd(SIMD64<Int8>.self, at: 64 * group)
                    dots = (lanes(dots.0, unpacked.0, xv, group: group), lanes(dots.1, unpacked.1, xv, group: group))
                }
                totals.0 &+= dots.0 &* SIMD16(repeating: Int32(scales.0[g]))
                totals.1 &+= dots.1 &* SIMD16(repeating: Int32(scales.1[g]))
            }
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            acc.0.addProduct(SIMD16(repeating: blocks.0.float16(at: 208)) * sparrow_i32x16_to_f32(totals.0), dA)
            acc.1.addProduct(SIMD16(repeating: blocks.1.float16(at: 208)) * sparrow_i32x16_to_f32(totals.1), dA)
        }
        return acc
    }
}

/// Weight rows unpacked to one unsigned byte per element, in element order, for `PanelDot`.
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

    static func unpackQ4_K(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer) {
        for b in 0..<blocks {
            for pair in 0..<4 {
                let q = sparrow_nibbles64((row + 144 * b).simd(SIMD32<UInt8>.self, at: 16 + 32 * pair))
                dst.storeBytes(of: q, toByteOffset: 256 * b + 64 * pair, as: SIMD64<UInt8>.self)
            }
        }
    }

    static func unpackQ6_K(_ row: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutableRawPointer) {
        for b in 0..<blocks {
            let block = row + 210 * b
            for half in 0..<2 {
                let low = block.simd(SIMD64<UInt8>.self, at: 64 * half)
                let high = block.simd(SIMD32<UInt8>.self, at: 128 + 32 * half)
                for pair in 0..<2 {
                    dst.storeBytes(of: sparrow_q6k_quants(low, high, Int32(4 * pair)), toByteOffset: 256 * b + 128 * half + 64 * pair, as: SIMD64<UInt8>.self)
                }
            }
        }
    }
}
