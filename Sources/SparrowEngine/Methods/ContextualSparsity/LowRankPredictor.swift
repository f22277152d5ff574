import SparrowKernels

/// Deja Vu's neuron predictor for one layer: Linear(inputSize → rank, no bias) followed by
/// Linear(rank → outputSize, with bias), nothing in between, so the logits are a rank-`rank`
/// affine map of the input:
///
///     logits = up · (down · x) + bias
///
/// sigmoid(logits) is the predicted probability that each neuron matters; at inference the
/// neurons to compute are the top-K logits (no threshold), so the sigmoid is never applied.
public struct LowRankPredictor: Sendable {
    public let inputSize: Int, rank: Int, outputSize: Int
    /// rank × inputSize, row-major.
    public var down: [Float]
    /// outputSize × rank, row-major.
    public var up: [Float]
    /// outputSize.
    public var bias: [Float]

    public init(inputSize: Int, rank: Int, outputSize: Int, down: [Float], up: [Float], bias: [Float]) {
        precondition(inputSize > 0 && rank > 0 && outputSize > 0, "LowRankPredictor: sizes must be positive")
        precondition(down.count == rank * inputSize && up.count == outputSize * rank && bias.count == outputSize,
                     "LowRankPredictor: weight sizes do not match \(inputSize) → \(rank) → \(outputSize)")
        self.inputSize = inputSize
        self.rank = rank
        self.outputSize = outputSize
        self.down = down
        self.up = up
        self.bias = bias
    }

    /// Logits for `rows` input rows (rows × inputSize floats) into rows × outputSize floats.
    public func logits(_ inputs: UnsafePointer<Float>, rows: Int, into logits: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        guard rows > 0 else { return }
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: rows * rank)
        defer { hidden.deallocate() }
        forward(inputs, rows: rows, hidden: hidden, logits: logits, pool: pool)
    }

    /// `logits` with the caller's rows × rank scratch for the low-rank code (down · x), which
    /// training keeps for the backward pass.
    func forward(_ inputs: UnsafePointer<Float>, rows: Int, hidden: UnsafeMutablePointer<Float>,
                 logits: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        down.withUnsafeBufferPointer { down in
            FloatGEMM.multiply(m: rows, n: rank, k: inputSize, a: inputs, b: down.baseAddress!, transposeB: true,
                               into: hidden, pool: pool)
        }
        bias.withUnsafeBufferPointer { bias in
            let f = outputSize
            pool.parallelFor(rows) { range in
                for r in range { (logits + r * f).update(from: bias.baseAddress!, count: f) }
            }
        }
        up.withUnsafeBufferPointer { up in
            FloatGEMM.multiply(m: rows, n: outputSize, k: rank, a: hidden, b: up.baseAddress!, transposeB: true,
                               into: logits, accumulate: true, pool: pool)
        }
    }
}
