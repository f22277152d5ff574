// Reference-order dequantisation of GGML blocks (same float operation order as ggml and the
// gguf package, so results match bit for bit). Used for embedding rows and tests, never in
// the matmul hot path, which works on the quantised bytes directly.

/// Dequantise `count` elements (a whole number of blocks) of `type` from src into dst.
public func dequantize(_ type: TensorType, _ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
    precondition(type.isComputable, "dequantize: \(type.name) is not supported")
    precondition(count >= 0 && count % type.blockSize == 0, "dequantize: \(count) is not a whole number of \(type.name) blocks")
    let blocks = count / type.blockSize
    let step = type.bytesPerBlock
    for b in 0..<blocks {
        let block = src + b * step
        let out = dst + b * type.blockSize
        switch type {
        case .f32: out[0] = block.loadUnaligned(as: Float.self)
        case .f16: out[0] = block.float16(at: 0)
        case .bf16: out[0] = Float(bitPattern: UInt32(block.loadUnaligned(as: UInt16.self)) << 16)
        case .q8_0: dequantizeQ8_0(block, out)
        case .q4_0: dequantizeQ4_0(block, out)
        case .q4_1: dequantizeQ4_1(block, out)
        case .q5_0: dequantizeQ5_0(block, out)
        case .q4_K: dequantizeQ4_K(block, out)
        case .q6_K: dequantizeQ6_K(block, out)
        default: preconditionFailure("unreachable: \(type.name) is computable but has no dequantiser")
        }
    }
}

extension UnsafeRawPointer {
    /// IEEE half at byte `offset`, widened to Float.
    @inline(__always) func float16(at offset: Int) -> Float {
        Float(Float16(bitPattern: loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
}

// Q8_0: f16 d, 32 x int8.
private func dequantizeQ8_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = block.float16(at: 0)
    let qs = (block + 2).assumingMemoryBound(to: Int8.self)
    for i in 0..<32 { out[i] = Float(qs[i]) * d }
}

// Q4_0: f16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high), offset 8.
private func dequantizeQ4_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = block.float16(at: 0)
    let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        out[j] = d * Float(Int(qs[j] & 0x0F) - 8)
        out[j + 16] = d * Float(Int(qs[j] >> 4) - 8)
    }
}

// Q4_1: f16 d, f16 min, nibbles as Q4_0 without offset.
private func dequantizeQ4_1(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = block.float16(at: 0), m = block.float16(at: 2)
    let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        out[j] = d * Float(qs[j] & 0x0F) + m
        out[j + 16] = d * Float(qs[j] >> 4) + m
    }
}

// Q5_0: f16 d, 32-bit mask of 5th bits (bit i = element i), nibbles as Q4_0, offset 16.
private func dequantizeQ5_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = block.float16(at: 0)
    let qh = block.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
    let qs = (block + 6).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        let lo = Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
        let hi = Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
        out[j] = d * Float(lo - 16)
        out[j + 16] = d * Float(hi - 16)
    }
}

/// Q4_K's eight 6-bit sub-block scales and mins, packed in 12 bytes.
@inline(__always)
func unpackQ4KScales(_ packed: UnsafeRawPointer) -> (scales: SIMD8<UInt8>, mins: SIMD8<UInt8>) {
    let s0 = packed.loadUnaligned(as: UInt32.self)
    let s1 = packed.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
    let s2 = packed.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    let low6: UInt32 = 0x3F3F_3F3F, low4: UInt32 = 0x0F0F_0F0F, bits45: UInt32 = 0x3030_3030
    let scales = SIMD2<UInt32>(s0 & low6, (s2 & low4) | ((s0 >> 2) & bits45))
    let mins = SIMD2<UInt32>(s1 & low6, ((s2 >> 4) & low4) | ((s1 >> 2) & bits45))
    return (unsafeBitCast(scales, to: SIMD8<UInt8>.self), unsafeBitCast(mins, to: SIMD8<UInt8>.self))
}

// Q4_K: f16 d, f16 dmin, 12 bytes scales/mins, 128 bytes nibbles. 32-byte group g holds
// sub-block 2g (low nibbles) and 2g+1 (high nibbles).
private func dequantizeQ4_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = block.float16(at: 0), dmin = block.float16(at: 2)
    let (scales, mins) = unpackQ4KScales(block + 4)
    let qs = (block + 16).assumingMemoryBound(to: UInt8.self)
    for sub in 0..<8 {
        let scale = d * Float(scales[sub]), offset = dmin * Float(mins[sub])
        let shift: UInt8 = sub % 2 == 0 ? 0 : 4
        let group = qs + 32 * (sub / 2)
        for l in 0..<32 { out[32 * sub + l] = scale * Float((group[l] >> shift) & 0x0F) - offset }
    }
}

// Q6_K: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales, f16 d; offset 32.
// Element e = 128h + 32k + l takes the nibble k/2 of ql[64h + 32(k%2) + l] and bits 2k..2k+1
// of qh[32h + l]; sub-block of 16 elements e/16 has its own scale.
private func dequantizeQ6_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let ql = block.assumingMemoryBound(to: UInt8.self)
    let qh = ql + 128
    let scales = (block + 192).assumingMemoryBound(to: Int8.self)
    let d = block.float16(at: 208)
    for h in 0..<2 {
        for k in 0..<4 {
            for l in 0..<32 {
                let e = 128 * h + 32 * k + l
                let low = (ql[64 * h + 32 * (k % 2) + l] >> UInt8(4 * (k / 2))) & 0x0F
                let high = (qh[32 * h + l] >> UInt8(2 * k)) & 0x03
                out[e] = d * Float(scales[e / 16]) * Float(Int(low | high << 4) - 32)
            }
        }
    }
}
