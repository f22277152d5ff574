import CSparrowSIMD

/// One weight row against one token panel (see TokenPanel.swift): 16 outputs, each rounded
/// exactly as the `QuantDot` kernel llama.cpp's batch path matches rounds it. `unpacked` holds
/// the row's quants as unsigned bytes in element order (from `PanelRow`), read four at a time
/// and broadcast to all 16 token lanes.
enum PanelDot<D: Int8DotProduct> {
    @inline(__always)
    static func lanes(_ start: SIMD16<Int32>, _ unpacked: UnsafeRawPointer, _ quants: UnsafePointer<Int8>, group g: Int) -> SIMD16<Int32> {
        D.dot(start, sparrow_broadcast4(unpacked + 4 * g), UnsafeRawPointer(quants).simd(SIMD64<Int8>.self, at: 64 * g))
    }

    /// `QuantDot.q8Block` for 16 tokens: lane k of each block is 4-element group k. Here the
    /// weights are the signed operand (value - offset, broadcast) and the activations the
    /// unsigned one (quant + 128); each lane starts from -128 * (sum of its 4 weights).
    @inline(__always)
    static func q8Block<F: Q8BlockFormat>(_ row: UnsafeRawPointer, _ unpacked: UnsafeRawPointer, _ x: Q8Panel, blocks: Int, _: F.Type) -> SIMD16<Float> {
        // Eight named accumulators (one per lane of ggml's 8-lane sum) stay in registers.
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        var minimums = SIMD16<Float>()
        let weights = unpacked, corrections = unpacked + 4 * blocks * 8
        let xq = UnsafeRawPointer(x.quants)
        for b in 0..<blocks {
            let block = row + F.blockBytes * b
            let scale = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b) * SIMD16(repeating: F.scale(block))
            @inline(__always) func add(_ acc: inout SIMD16<Float>, _ k: Int) {
                let g = 8 * b + k
                let start = sparrow_broadcast_i32(corrections + 4 * g)
                let lane = D.dot(start, xq.simd(SIMD64<UInt8>.self, at: 64 * g), sparrow_broadcast4_i8(weights + 4 * g))
                acc.addProduct(sparrow_i32x16_to_f32(lane), scale)
            }
            add(&a0, 0); add(&a1, 1); add(&a2, 2); add(&a3, 3); add(&a4, 4); add(&a5, 5); add(&a6, 6); add(&a7, 7)
            if F.hasMinimum {
                minimums.addProduct(SIMD16(repeating: F.minimum(block)), UnsafeRawPointer(x.sums).simd(SIMD16<Float>.self, at: 64 * b))
            }
        }
        // hsum_float_8's order, lane-wise over the tokens.
        let sum = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
        return F.hasMinimum ? sum + minimums : sum
    }

    /// `QuantDot.q4_K(pairwise: true)` for 16 tokens.
    @inline(__always)
    static func q4_K(_ row: UnsafeRawPointer, _ unpacked: UnsafeRawPointer, _ x: Q8KPanel, blocks: Int) -> SIMD16<Float> {
        var acc = SIMD16<Float>(), accMin = SIMD16<Float>()
        for b in 0..<blocks {
            let block = row + 144 * b
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            let scaleW = SIMD16(repeating: block.float16(at: 0)) * dA, minW = SIMD16(repeating: block.float16(at: 2)) * dA
            let (scales, mins) = unpackQ4KScales(block + 4)
            // One accumulator per 32-element sub-block, filled in interleaved order so the
            // eight dependency chains overlap.
            var s0 = SIMD16<Int32>(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0
            for j in 0..<8 {
                let g = 64 * b + j
                s0 = lanes(s0, unpacked, x.quants, group: g); s1 = lanes(s1, unpacked, x.quants, group: g + 8)
                s2 = lanes(s2, unpacked, x.quants, group: g + 16); s3 = lanes(s3, unpacked, x.quants, group: g + 24)
                s4 = lanes(s4, unpacked, x.quants, group: g + 32); s5 = lanes(s5, unpacked, x.quants, group: g + 40)
                s6 = lanes(s6, unpacked, x.quants, group: g + 48); s7 = lanes(s7, unpacked, x.quants, group: g + 56)
            }
            @inline(__always) func addPair(_ a: Int, _ low: SIMD16<Int32>, _ high: SIMD16<Int32>) {
                let total = low &* SIMD16(repeating: Int32(scales[a])) &+ high &* SIMD16(repeating: Int32(scales[a + 1]))
                let minTotal = subBlockSum(x, 8 * b + a) &* SIMD16(repeating: Int32(mins[a]))
                    &+ subBlockSum(x, 8 * b + a + 1) &* SIMD16(repeating: Int32(mins[a + 1]))
                acc.addProduct(sparrow_i32x16_to_f32(total), scaleW)
                accMin.addProduct(sparrow_i32x16_to_f32(minTotal), minW)
            }
            addPair(0, s0, s1); addPair(2, s2, s3); addPair(4, s4, s5); addPair(6, s6, s7)
        }
        return acc - accMin
    }

    /// Per token, the sum of the quants of 32-element sub-block `s`.
    @inline(__always)
    static func subBlockSum(_ x: Q8KPanel, _ s: Int) -> SIMD16<Int32> {
        let sums = UnsafeRawPointer(x.groupSums)
        return sums.simd(SIMD16<Int32>.self, at: 128 * s) &+ sums.simd(SIMD16<Int32>.self, at: 128 * s + 64)
    }

    /// `QuantDot.q6KTiled` for 16 tokens; the -32 offset is removed per 16-element group
    /// through the activations' group sums.
    @inline(__always)
    static func q6_K(_ row: UnsafeRawPointer, _ unpacked: UnsafeRawPointer, _ x: Q8KPanel, blocks: Int) -> SIMD16<Float> {
        var acc = SIMD16<Float>()
        let sums = UnsafeRawPointer(x.groupSums)
        for b in 0..<blocks {
            let block = row + 210 * b
            let scales = (block + 192).assumingMemoryBound(to: Int8.self)
            var total = SIMD16<Int32>()
            for g in 0..<16 {
                var dot = SIMD16<Int32>() &- (sums.simd(SIMD16<Int32>.self, at: 64 * (16 * b + g)) &<< 5)
                for j in 0..<4 { dot = lanes(dot, unpacked, x.quants, group: 64 * b + 4 * g + j) }
                total &+= dot &* SIMD16(repeating: Int32(scales[g]))
            }
            let dA = UnsafeRawPointer(x.scales).simd(SIMD16<Float>.self, at: 64 * b)
            acc.addProduct(SIMD16(repeating: block.float16(at: 208)) * sparrow_i32x16_to_f32(total), dA)
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
