import Testing
@testable import SparrowKernels

@Suite struct DequantizeTests {
    @Test func fixturesCoverEveryComputableType() throws {
        let covered = Set(try QuantFixture.all().map(\.tensorType))
        #expect(covered == Set(TensorType.allCases.filter(\.isComputable)))
    }

    @Test(arguments: try QuantFixture.all())
    func matchesGGUFReference(_ fixture: QuantFixture) throws {
        let bytes = try fixture.encoded(), reference = try fixture.reference()
        let count = fixture.rows * fixture.cols
        #expect(bytes.count == fixture.tensorType.byteCount(elements: count))
        let ours = dequantized(fixture.tensorType, bytes, count: count)
        var mismatches = 0
        for i in 0..<count where ours[i] != reference[i] {
            // Allow only float-rounding differences (≤ 1e-6 relative).
            if abs(ours[i] - reference[i]) > 1e-6 * max(abs(reference[i]), Float.leastNormalMagnitude) { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(fixture.type): \(mismatches) elements differ from gguf's dequantisation")
    }

    @Test(arguments: try QuantFixture.all())
    func dequantizeRowReadsTheRightRow(_ fixture: QuantFixture) throws {
        let bytes = try fixture.encoded(), reference = try fixture.reference()
        try bytes.withUnsafeBytes { raw in
            let w = try WeightMatrix(type: fixture.tensorType, rows: fixture.rows, cols: fixture.cols, data: raw.baseAddress!)
            #expect(w.rowBytes * fixture.rows == bytes.count)
            var row = [Float](repeating: .nan, count: fixture.cols)
            row.withUnsafeMutableBufferPointer { w.dequantizeRow(fixture.rows - 1, into: $0.baseAddress!) }
            #expect(row == Array(reference[(fixture.rows - 1) * fixture.cols..<fixture.rows * fixture.cols]))
        }
    }

    @Test func rejectsUnsupportedTypesAndShapes() throws {
        let bytes = [UInt8](repeating: 0, count: 4096)
        try bytes.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            for type in [TensorType.q5_1, .q8_K, .q2_K, .iq4_nl, .i32] {
                #expect(throws: KernelError.self) { try WeightMatrix(type: type, rows: 1, cols: 256, data: p) }
            }
            #expect(throws: KernelError.self) { try WeightMatrix(type: .q4_0, rows: 1, cols: 48, data: p) }
            #expect(throws: KernelError.self) { try WeightMatrix(type: .q4_K, rows: 2, cols: 128, data: p) }
            #expect(throws: KernelError.self) { try WeightMatrix(type: .f32, rows: 1, cols: 0, data: p) }
            #expect(throws: KernelError.self) { try WeightMatrix(type: .f16, rows: -1, cols: 8, data: p) }
            let message = try #require(throws: KernelError.self) { try WeightMatrix(type: .q5_1, rows: 1, cols: 32, data: p) }
            #expect(message.description.contains("q5_1"))
            _ = try WeightMatrix(type: .q6_K, rows: 3, cols: 512, data: p)
        }
    }
}
