import Foundation
import SparrowTestSupport
@testable import SparrowKernels

/// A reference vector from scripts/make_quant_vectors.py (gguf's numpy implementation).
struct QuantFixture: Decodable {
    let type: String
    let ggmlType: UInt32
    let rows: Int
    let cols: Int
    let source: String

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/quant")

    static func all() throws -> [QuantFixture] {
        try JSONDecoder().decode([QuantFixture].self, from: Data(contentsOf: directory.appendingPathComponent("index.json")))
    }

    var tensorType: TensorType { TensorType(rawValue: ggmlType)! }
    func encoded() throws -> [UInt8] { try [UInt8](Data(contentsOf: Self.directory.appendingPathComponent("\(type).bin"))) }
    func reference() throws -> [Float] {
        let bytes = try Data(contentsOf: Self.directory.appendingPathComponent("\(type).f32"))
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

/// Random but valid encoded rows: random quant bytes with finite f16 scales of realistic size.
func randomEncodedRows(_ type: TensorType, rows: Int, cols: Int, using rng: inout SplitMix64) -> [UInt8] {
    let count = rows * cols
    switch type {
    case .f32:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: Float.random(in: -1...1, using: &rng)) { Array($0) } }
    case .f16:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: Float16(Float.random(in: -1...1, using: &rng)).bitPattern) { Array($0) } }
    case .bf16:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: UInt16(Float.random(in: -1...1, using: &rng).bitPattern >> 16)) { Array($0) } }
    default:
        let scaleOffsets: [Int] = switch type {
        case .q4_1, .q4_K: [0, 2]
        case .q6_K: [208]
        default: [0]
        }
        var bytes = (0..<type.byteCount(elements: count)!).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for block in stride(from: 0, to: bytes.count, by: type.bytesPerBlock) {
            for offset in scaleOffsets {
                let scale = Float16(Float.random(in: -0.02...0.02, using: &rng)).bitPattern
                bytes[block + offset] = UInt8(scale & 0xFF)
                bytes[block + offset + 1] = UInt8(scale >> 8)
            }
        }
        return bytes
    }
}

/// The weights as floats, via `dequantize` (itself checked against gguf's reference).
func dequantized(_ type: TensorType, _ bytes: [UInt8], count: Int) -> [Float] {
    var out = [Float](repeating: 0, count: count)
    bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { dequantize(type, src.baseAddress!, into: $0.baseAddress!, count: count) } }
    return out
}

/// Runs `matmul` on encoded rows and returns the outputs.
func multiply(_ matmul: MatMul, _ type: TensorType, _ bytes: [UInt8], rows: Int, cols: Int, input: [Float], tokens: Int,
              order: SummationOrder = .referenceBatch) throws -> [Float] {
    var output = [Float](repeating: .nan, count: rows * tokens)
    try bytes.withUnsafeBytes { raw in
        let w = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { matmul(w, x.baseAddress!, tokens: tokens, order: order, into: $0.baseAddress!) }
        }
    }
    return output
}
