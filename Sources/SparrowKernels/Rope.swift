import Foundation

/// Rotary position embedding.
public struct Rope: Sendable {
    /// Which elements of a head vector form each rotated pair.
    public enum PairLayout: Sendable {
        /// Adjacent elements (2i, 2i+1): GGML's "normal" mode, used for llama (whose Q/K
        /// weights the GGUF converter permuted to match).
        case adjacent
        /// Element i with i + dims/2: GGML's "neox" mode (Qwen2, Gemma).
        case halves
    }

    public let layout: PairLayout
    /// Leading elements of each head vector that are rotated.
    public let dimensions: Int
    public let base: Float
    /// Position multiplier (1 / linear scaling factor).
    public let positionScale: Float

    public init(layout: PairLayout, dimensions: Int, base: Float, positionScale: Float = 1) {
        self.layout = layout
        self.dimensions = dimensions
        self.base = base
        self.positionScale = positionScale
    }

    /// Rotates `heads` consecutive head vectors of `headDim` floats, all at `position`, in place.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, position: Int) {
        let pairs = dimensions / 2
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * pairs) { table in
            // Angles grow geometrically per pair; computing them by repeated multiplication in
            // f32 mirrors llama.cpp, which keeps our logits closest to the reference.
            let ratio = powf(base, -2 / Float(dimensions))
            var theta = Float(position) * positionScale
            for i in 0..<pairs {
                table[2 * i] = cosf(theta)
                table[2 * i + 1] = sinf(theta)
                theta *= ratio
            }
            for h in 0..<heads {
                let v = x + h * headDim
                for i in 0..<pairs {
                    let (a, b) = layout == .adjacent ? (2 * i, 2 * i + 1) : (i, i + pairs)
                    let c = table[2 * i], s = table[2 * i + 1]
                    let x0 = v[a], x1 = v[b]
                    // llama.cpp's C compiler fuses the first product of each line.
                    v[a] = (-(x1 * s)).addingProduct(x0, c)
                    v[b] = (x1 * c).addingProduct(x0, s)
                }
            }
        }
    }
}
