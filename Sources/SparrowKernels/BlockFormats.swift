import CSparrowSIMD

/// The four formats whose blocks hold 32 elements and an f16 scale, read against Q8
/// activation blocks: each block's weights as 32 unsigned bytes, the value `offset` standing
/// for zero (so unsigned-by-signed int8 dot products apply), and for Q4_1 an f16 minimum.
protocol Q8BlockFormat {
    static var blockBytes: Int { get }
    static var offset: UInt8 { get }
    static var hasMinimum: Bool { get }
    static func quants(_ block: UnsafeRawPointer) -> SIMD32<UInt8>
}

/// Four of anything, e.g. the rows a kernel reads together.
typealias Quad<T> = (T, T, T, T)

extension Q8BlockFormat {
    @inline(__always) static func scale(_ block: UnsafeRawPointer) -> Float { block.float16(at: 0) }
    @inline(__always) static func minimum(_ block: UnsafeRawPointer) -> Float { block.float16(at: 2) }
    /// The scales of four blocks, converted together.
    @inline(__always) static func scales(_ blocks: Quad<UnsafeRawPointer>) -> SIMD4<Float> { float16s(blocks, at: 0) }
    @inline(__always) static func minimums(_ blocks: Quad<UnsafeRawPointer>) -> SIMD4<Float> { float16s(blocks, at: 2) }
    @inline(__always) private static func float16s(_ b: Quad<UnsafeRawPointer>, at offset: Int) -> SIMD4<Float> {
        sparrow_f16x4_to_f32(b.0.loadUnaligned(fromByteOffset: offset, as: UInt16.self), b.1.loadUnaligned(fromByteOffset: offset, as: UInt16.self),
                             b.2.loadUnaligned(fromByteOffset: offset, as: UInt16.self), b.3.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}

/// f16 d, 32 signed bytes (made unsigned by +128).
enum Q8_0Format: Q8BlockFormat {
    static var blockBytes: Int { 34 }
    static var offset: UInt8 { 128 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func quants(_ block: UnsafeRawPointer) -> SIMD32<UInt8> {
        sparrow_offset_binary32(block.simd(SIMD32<Int8>.self, at: 2))
    }
}

/// f16 d, 16 bytes of nibbles, offset 8.
enum Q4_0Format: Q8BlockFormat {
    static var blockBytes: Int { 18 }
    static var offset: UInt8 { 8 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func quants(_ block: UnsafeRawPointer) -> SIMD32<UInt8> {
        sparrow_nibbles32(block.simd(SIMD16<UInt8>.self, at: 2))
    }
}

/// f16 d, f16 m, 16 bytes of nibbles: value = d * q + m.
enum Q4_1Format: Q8BlockFormat {
    static var blockBytes: Int { 20 }
    static var offset: UInt8 { 0 }
    static var hasMinimum: Bool { true }
    @inline(__always) static func quants(_ block: UnsafeRawPointer) -> SIMD32<UInt8> {
        sparrow_nibbles32(block.simd(SIMD16<UInt8>.self, at: 4))
    }
}

/// f16 d, 32 fifth bits, 16 bytes of nibbles, offset 16.
enum Q5_0Format: Q8BlockFormat {
    static var blockBytes: Int { 22 }
    static var offset: UInt8 { 16 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func quants(_ block: UnsafeRawPointer) -> SIMD32<UInt8> {
        sparrow_q5_quants(block.simd(SIMD16<UInt8>.self, at: 6), block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
    }
}
