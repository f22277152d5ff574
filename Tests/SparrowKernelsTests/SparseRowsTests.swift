import Testing
import SparrowTestSupport
@testable import SparrowKernels

/// The kernels contextual sparsity reads only some rows with.
@Suite struct SparseRowsTests {
    static let types = TensorType.allCases.filter(\.isComputable)

    /// Selected rows give exactly what the full one-token product gives for those rows.
    @Test(arguments: types)
    func selectedRowsEqualTheFullProductsRows(_ type: TensorType) throws {
        var rng = SplitMix64(seed: 77 &+ UInt64(type.rawValue))
        let rows = 40, cols = type.blockSize == 1 ? 64 : 512
        let bytes = randomEncodedRows(type, rows: rows, cols: cols, using: &rng)
        let input = (0..<cols).map { _ in Float.random(in: -2...2, using: &rng) }
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        let full = try multiply(matmul, type, bytes, rows: rows, cols: cols, input: input, tokens: 1)
        let selected: [Int32] = [0, 3, 4, 17, 18, 19, 38, 39]
        var output = [Float](repeating: .nan, count: selected.count)
        try bytes.withUnsafeBytes { raw in
            let w = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
            selected.withUnsafeBufferPointer { matmul.selectedRows(w, input, rows: $0, into: &output) }
        }
        #expect(output == selected.map { full[Int($0)] }, "\(type.name)")
    }

    /// A product over selected columns of the int8 column copy matches the float64 product of
    /// the dequantised original with every other input zeroed, within the rounding the copy
    /// (at most half a whole-row scale per weight) and the 16-bit inputs (half the input
    /// scale) allow; on
    /// every instruction set, with rows that leave a padded last group, several tiles, an odd
    /// column count and all columns.
    @Test(arguments: DotInstructions.allCases.filter(\.isAvailable))
    func selectedColumnsMatchTheMaskedProduct(_ instructions: DotInstructions) throws {
        var rng = SplitMix64(seed: 31)
        let rows = 333, cols = 608  // three blocks of row scales, the last a partial one
        let bytes = randomEncodedRows(.q8_0, rows: rows, cols: cols, using: &rng)
        let weights = dequantized(.q8_0, bytes, count: rows * cols)
        let input = (0..<cols).map { _ in Float.random(in: -2...2, using: &rng) }
        let matmul = MatMul(pool: ThreadPool(threadCount: 2))
        matmul.instructions = instructions
        try bytes.withUnsafeBytes { raw in
            let w = try WeightMatrix(type: .q8_0, rows: rows, cols: cols, data: raw.baseAddress!)
            let copy = ColumnMajorInt8Matrix(w, workers: 2, targetTileRows: 64)
            #expect(copy.tileCount > 2)
            // Odd counts within blocks, a block with one column, and all columns.
            let scattered = [Int32](stride(from: 1, to: 250, by: 3)) + [255, 256, 300] + [Int32](stride(from: 513, to: Int32(cols), by: 2))
            for selected in [scattered, (0..<Int32(cols)).map { $0 }] {
                var output = [Float](repeating: .nan, count: rows)
                selected.withUnsafeBufferPointer { matmul.selectedColumns(copy, input, columns: $0, into: &output) }
                let inputScale = Double(selected.map { abs(input[Int($0)]) }.max()!) / 32767
                for r in 0..<rows {
                    let row = selected.map { Double(weights[r * cols + Int($0)]) }, x = selected.map { Double(input[Int($0)]) }
                    let exact = zip(row, x).reduce(0) { $0 + $1.0 * $1.1 }
                    let rowScale = (0..<cols).map { abs(Double(weights[r * cols + $0])) }.max()! / 127
                    let bound = zip(row, x).reduce(0) { $0 + abs($1.1) * rowScale / 2 + (abs($1.0) + rowScale / 2) * inputScale / 2 } + 1e-4
                    #expect(abs(Double(output[r]) - exact) <= bound, "\(instructions.rawValue) row \(r) of \(selected.count) columns")
                }
            }
        }
    }

    /// Re-encoding gguf's own Q8_0 blocks (from their dequantised values) gives the same bytes.
    @Test func q8_0QuantiserReproducesTheReferenceBlocks() throws {
        let fixture = try #require(try QuantFixture.all().first { $0.type == "q8_0" })
        let reference = try fixture.reference(), encoded = try fixture.encoded()
        var bytes = [UInt8](repeating: 0, count: encoded.count)
        bytes.withUnsafeMutableBytes { quantizeQ8_0(reference, count: reference.count, into: $0.baseAddress!) }
        #expect(bytes == encoded)
    }

    @Test func largestSelectsTheTopValuesInIndexOrder() {
        var rng = SplitMix64(seed: 9)
        for count in [1, 2, 17, 1000] {
            var values = (0..<count).map { _ in Float(Int.random(in: 0..<50, using: &rng)) }  // many ties
            values[count / 2] = .infinity
            for k in Set([0, 1, count / 3, count - 1, count]) {
                var scratch = [Float](repeating: 0, count: count), indices = [Int32](repeating: -1, count: count)
                Selection.largest(k, of: values, count: count, scratch: &scratch, into: &indices)
                let picked = Array(indices.prefix(k)).map(Int.init)
                let expected = (0..<count).sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(k).sorted()
                #expect(picked == expected, "count \(count) k \(k)")
            }
        }
    }

    /// The sampled threshold keeps a top set (everything kept is at least everything left),
    /// in index order, of about the size asked for: within 15% on 150k logit-like values.
    @Test func approximatelyLargestKeepsATopSetOfAboutK() {
        var rng = SplitMix64(seed: 21)
        let count = 150_007  // not a multiple of the scan's 16 lanes
        let values = (0..<count).map { _ in Float.random(in: -1...1, using: &rng) * Float.random(in: 0...8, using: &rng) }
        var scratch = [Float](repeating: 0, count: count / 8 + 1), indices = [Int32](repeating: -1, count: count)
        for k in [1000, 4096, 16384, count] {
            let n = Selection.approximatelyLargest(k, of: values, count: count, stride: 8, scratch: &scratch, into: &indices)
            let kept = Array(indices.prefix(n)).map(Int.init)
            #expect(abs(Double(n) / Double(k) - 1) < 0.15, "k \(k): kept \(n)")
            #expect(zip(kept, kept.dropFirst()).allSatisfy { $0 < $1 })
            var isKept = [Bool](repeating: false, count: count)
            for i in kept { isKept[i] = true }
            let lowestKept = kept.map { values[$0] }.min()!, highestLeft = (0..<count).filter { !isKept[$0] }.map { values[$0] }.max() ?? -.infinity
            #expect(lowestKept >= highestLeft, "k \(k)")
        }
    }

    /// Radix selection's keys sort as the floats do, across signs and magnitudes.
    @Test func orderKeysSortAsTheFloats() {
        let floats: [Float] = [-.infinity, -1e30, -2, -1, -1e-30, 0, 1e-30, 1, 2, 1e30, .infinity]
        let keys = floats.map(Selection.orderKey)
        #expect(keys == keys.sorted() && Set(keys).count == keys.count)
        let lanes = (floats + floats.prefix(5)).map { -$0 }
        #expect(lanes.withUnsafeBytes { Selection.orderKeys($0.baseAddress!) } == SIMD16(lanes.map(Selection.orderKey)))
    }

    @Test func aboveKeepsMagnitudesOverTheThreshold() {
        let values: [Float] = [0.1, -2, 0.5, 3, -0.5, 0]
        var indices = [Int32](repeating: -1, count: values.count)
        let n = Selection.above(0.5, magnitudesOf: values, count: values.count, into: &indices)
        #expect(Array(indices.prefix(n)) == [1, 3])
        // Long enough for the vector scan, with a tail: the same set as a plain filter.
        var rng = SplitMix64(seed: 5)
        let many = (0..<1000 + 13).map { _ in Float.random(in: -1...1, using: &rng) }
        var kept = [Int32](repeating: -1, count: many.count)
        let m = Selection.above(0.9, magnitudesOf: many, count: many.count, into: &kept)
        #expect(Array(kept.prefix(m)) == many.indices.filter { abs(many[$0]) > 0.9 }.map(Int32.init))
    }
}
