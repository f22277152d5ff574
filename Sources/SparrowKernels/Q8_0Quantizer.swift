/// Encodes `count` floats (a multiple of 32) as GGML Q8_0 blocks at `dst`: per block an f16
/// scale max|x|/127 and 32 rounded int8s, as the reference quantiser does.
public func quantizeQ8_0(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
    precondition(count % 32 == 0, "quantizeQ8_0: \(count) is not a multiple of 32")
    for b in 0..<count / 32 {
        let block = dst + b * 34, v = x + b * 32
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(v[j])) }
        let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
        block.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
        for j in 0..<32 { block.storeBytes(of: Int8((v[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self) }
    }
}
