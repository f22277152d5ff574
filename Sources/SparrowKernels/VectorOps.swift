import Foundation

// Element-wise and reduction kernels over f32 vectors. They take raw pointers because they run
// inside the per-token hot path, where array bounds and exclusivity checks would dominate.

/// The SIMD width used for f32 loops: one AVX-512 register.
@usableFromInline typealias F32x16 = SIMD16<Float>

@inline(__always) @usableFromInline
func load16(_ p: UnsafePointer<Float>) -> F32x16 {
    UnsafeRawPointer(p).loadUnaligned(as: F32x16.self)
}

@inline(__always) @usableFromInline
func store16(_ v: F32x16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F32x16.self)
}

/// y[i] += x[i].
@inlinable
public func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        store16(load16(y + i) + load16(x + i), y + i)
        i += 16
    }
    while i < count {
        y[i] += x[i]
        i += 1
    }
}

/// x[i] *= s.
@inlinable
public func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
    let vs = F32x16(repeating: s)
    var i = 0
    while i + 16 <= count {
        store16(load16(x + i) * vs, x + i)
        i += 16
    }
    while i < count {
        x[i] *= s
        i += 1
    }
}

/// RMS normalisation: out = x / sqrt(mean(x²) + eps) * weight. `out` may alias `x`.
@inlinable
public func rmsNorm(
    _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, epsilon: Float,
    into out: UnsafeMutablePointer<Float>, count: Int
) {
    // The sum of squares runs in f64, in order, as llama.cpp's does: the normalised values feed
    // int8 quantisation, where a last-bit difference can flip a rounding.
    var sumOfSquares: Double = 0
    for i in 0..<count { sumOfSquares += Double(x[i] * x[i]) }
    let meanSquare = Float(sumOfSquares / Double(count))
    let s = 1 / (meanSquare + epsilon).squareRoot()
    let vs = F32x16(repeating: s)
    var i = 0
    while i + 16 <= count {
        store16(load16(x + i) * vs * load16(weight + i), out + i)
        i += 16
    }
    while i < count {
        out[i] = x[i] * s * weight[i]
        i += 1
    }
}

/// Gated activations of SwiGLU / GeGLU MLPs: gate[i] = act(gate[i]) * up[i].
public enum GatedActivation: Sendable {
    case silu
    /// GELU with the tanh approximation, as Gemma uses.
    case geluTanh

    @inlinable
    public func apply(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        switch self {
        case .silu:
            // x / (1 + e^-x) with llama.cpp's vectorised exponential (its scalar expf only for
            // a tail shorter than its 8-lane vectors), so the products round as there.
            var i = 0
            while i + 16 <= count {
                let g = load16(gate + i)
                store16(g / (1 + vectorExp(-g)) * load16(up + i), gate + i)
                i += 16
            }
            if i + 8 <= count {
                var g = F32x16()
                for k in 0..<8 { g[k] = gate[i + k] }
                let y = g / (1 + vectorExp(-g))
                for k in 0..<8 { gate[i + k] = y[k] * up[i + k] }
                i += 8
            }
            while i < count {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
                i += 1
            }
        case .geluTanh:
            let c: Float = 0.797_884_560_802_865_4  // sqrt(2/pi)
            for i in 0..<count {
                let g = gate[i]
                gate[i] = 0.5 * g * (1 + tanhf(c * (g + 0.044_715 * g * g * g))) * up[i]
            }
        }
    }
}
