import CSparrowSIMD
import Foundation

/// e^x lane by lane, rounded exactly as llama.cpp's vectorised expf (ggml_v_expf, after Arm's
/// optimized-routines): x = n·ln2 + b with n an integer, e^b from a degree-5 polynomial, 2^n
/// assembled in the exponent bits. Its error is within about 1.5 ulp of the true e^x; using the
/// same algorithm rather than libm's expf keeps softmax and SiLU outputs bit-identical to the
/// reference's, so later int8 roundings cannot drift apart.
@inline(__always) @usableFromInline
func vectorExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias V = SIMD16<Float>
    typealias Bits = SIMD16<UInt32>
    let shifter = V(repeating: 0x1.8p23)
    // z holds round(x / ln2) in its low mantissa bits; n is that integer as a float.
    let z = shifter.addingProduct(x, V(repeating: 0x1.715476p+0))
    let n = z - shifter
    // b = x - n·ln2, with ln2 split in two so the reduction stays exact.
    let b = (x.addingProduct(-n, V(repeating: 0x1.62e4p-1))).addingProduct(-n, V(repeating: 0x1.7f7d1cp-20))
    let e = z.bitPattern &<< 23
    let scale = V(bitPattern: e &+ Float(1).bitPattern)
    let u = b * b
    let upper = V(repeating: 0x1.573e2ep-5).addingProduct(V(repeating: 0x1.0e4020p-7), b)
    let lower = V(repeating: 0x1.fffdb6p-2).addingProduct(V(repeating: 0x1.555e66p-3), b)
    // e^b - 1 ≈ c1·b + (c2 + c3·b)·u + (c4 + c5·b)·u², evaluated as ggml nests it.
    let j = (V(repeating: 0x1.ffffecp-1) * b).addingProduct(lower.addingProduct(upper, u), u)
    let large = abs(n) .> 126
    if !any(large) { return scale.addingProduct(j, scale) }
    // |n| > 126: 2^n overflows the exponent field, so it is applied as two factors.
    let g = Bits(repeating: 0).replacing(with: 0x8200_0000, where: n .<= 0)
    let s1 = V(bitPattern: g &+ 0x7F00_0000)
    let s2 = V(bitPattern: e &- g)
    let huge = abs(n) .> 192
    var result = scale.addingProduct(j, scale)
    result.replace(with: s2.addingProduct(s2, j) * s1, where: large)
    result.replace(with: s1 * s1, where: huge)
    return result
}

extension SIMD16 where Scalar == Float {
    @inline(__always) var bitPattern: SIMD16<UInt32> { unsafeBitCast(self, to: SIMD16<UInt32>.self) }
    @inline(__always) init(bitPattern: SIMD16<UInt32>) { self = unsafeBitCast(bitPattern, to: Self.self) }
}

@inline(__always) private func abs(_ v: SIMD16<Float>) -> SIMD16<Float> {
    SIMD16(bitPattern: v.bitPattern & 0x7FFF_FFFF)
}

/// log(sum_i e^x[i]), computed around the maximum so that nothing overflows; partial sums in
/// f32 lanes per 16 elements, accumulated in Double.
public func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
    precondition(count > 0, "logSumExp of nothing")
    var peak = -Float.infinity
    for i in 0..<count { peak = max(peak, x[i]) }
    let shift = SIMD16<Float>(repeating: peak)
    var total = 0.0, i = 0
    while i + 16 <= count {
        total += Double(sparrow_reduce_add_f32x16(vectorExp(load16(x + i) - shift)))
        i += 16
    }
    while i < count {
        total += Double(Foundation.exp(x[i] - peak))
        i += 1
    }
    return Double(peak) + Foundation.log(total)
}
