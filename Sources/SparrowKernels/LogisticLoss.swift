import CSparrowSIMD
import Foundation

/// Gradient, with respect to the logits z, of binary cross-entropy with logits whose positive
/// labels weigh `positiveWeight`, in place:
///
///     loss(z, y) = -(positiveWeight · y · log σ(z) + (1 - y) · log(1 - σ(z)))
///     z ← scale · (σ(z) - y) · (1 + (positiveWeight - 1) · y)
///
/// for labels y given as bytes 0 or 1. Only σ(z) = 1 / (1 + e^-z) is needed, which is finite
/// for every finite z: e^-z overflows to +inf for very negative z and σ becomes 0, as it should.
public func weightedLogisticGradient(
    _ z: UnsafeMutablePointer<Float>, labels: UnsafePointer<UInt8>, positiveWeight: Float, scale: Float, count: Int
) {
    let s = F32x16(repeating: scale), extra = F32x16(repeating: positiveWeight - 1)
    var i = 0
    while i + 16 <= count {
        let bytes = UnsafeRawPointer(labels + i).loadUnaligned(as: SIMD16<Int8>.self)
        let y = sparrow_i32x16_to_f32(sparrow_i8x16_to_i32(bytes))
        let sigma = 1 / (1 + vectorExp(-load16(z + i)))
        store16(s * (sigma - y) * (1 + extra * y), z + i)
        i += 16
    }
    while i < count {
        let y = Float(labels[i])
        let sigma = 1 / (1 + expf(-z[i]))
        z[i] = scale * (sigma - y) * (1 + (positiveWeight - 1) * y)
        i += 1
    }
}
