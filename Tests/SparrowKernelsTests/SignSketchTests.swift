import Testing
import SparrowTestSupport
@testable import SparrowKernels

@Suite struct SignSketchTests {
    /// Scores are m[r] · Σ sign(W[r, c]) · q[c], computed here from the dequantised weights,
    /// for a width that leaves a partial last word; every instruction set agrees.
    @Test func scoresAreTheSignedSumsOfTheQuantisedInput() throws {
        var rng = SplitMix64(seed: 31)
        let rows = 37, cols = 96
        let bytes = randomEncodedRows(.q8_0, rows: rows, cols: cols, using: &rng)
        let weights = dequantized(.q8_0, bytes, count: rows * cols)
        let input = (0..<cols).map { _ in Float.random(in: -3...3, using: &rng) }
        let scale = 127 / input.map(abs).max()!
        let quantised = input.map { Int(($0 * scale).rounded()) }
        let expected = (0..<rows).map { r -> Float in
            let row = weights[r * cols..<(r + 1) * cols]
            let signed = zip(row, quantised).reduce(0) { $0 + ($1.0 > 0 ? $1.1 : -$1.1) }
            return row.map(abs).reduce(0, +) / Float(cols) * Float(signed)
        }
        let pool = ThreadPool(threadCount: 2)
        for instructions in DotInstructions.allCases where instructions.isAvailable {
            let sketch = try bytes.withUnsafeBytes { SignSketch(try WeightMatrix(type: .q8_0, rows: rows, cols: cols, data: $0.baseAddress!), pool: pool) }
            sketch.instructions = instructions
            var scores = [Float](repeating: .nan, count: rows)
            sketch.scores(input, into: &scores, pool: pool)
            for r in 0..<rows { #expect(abs(scores[r] - expected[r]) <= 1e-4 * max(1, abs(expected[r])), "row \(r), \(instructions)") }
        }
    }

    /// On a matrix whose rows are noisy copies of a few directions, the row with the largest
    /// exact product is among the sketch's top 4 for inputs along any of those directions.
    @Test func topScoresHoldTheLargestProduct() throws {
        var rng = SplitMix64(seed: 8)
        let rows = 500, cols = 128
        let directions = (0..<5).map { _ in (0..<cols).map { _ in Float.random(in: -1...1, using: &rng) } }
        var weights: [Float] = []
        for r in 0..<rows {
            let size = Float(1 + r % 7) / 7
            for value in directions[r % 5] { weights.append(value * size + Float.random(in: -0.3...0.3, using: &rng)) }
        }
        var bytes = [UInt8](repeating: 0, count: TensorType.q8_0.byteCount(elements: rows * cols)!)
        bytes.withUnsafeMutableBytes { quantizeQ8_0(weights, count: weights.count, into: $0.baseAddress!) }
        let pool = ThreadPool(threadCount: 2)
        let sketch = try bytes.withUnsafeBytes { SignSketch(try WeightMatrix(type: .q8_0, rows: rows, cols: cols, data: $0.baseAddress!), pool: pool) }
        for direction in directions {
            let input = direction.map { $0 + Float.random(in: -0.2...0.2, using: &rng) }
            let exact: [Float] = (0..<rows).map { r in
                var sum: Float = 0
                for c in 0..<cols { sum += weights[r * cols + c] * input[c] }
                return sum
            }
            var scores = [Float](repeating: .nan, count: rows)
            sketch.scores(input, into: &scores, pool: pool)
            let best = exact.indices.max { exact[$0] < exact[$1] }!
            let top = scores.indices.sorted { scores[$0] > scores[$1] }.prefix(4)
            #expect(top.contains(best), "best row \(best) not in the sketch's top 4 \(Array(top))")
        }
    }
}
