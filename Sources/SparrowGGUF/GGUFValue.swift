/// One metadata value, in the type the file stores it as.
///
/// Not `indirect`: the only recursive case holds an `Array`, which is already a reference, and
/// boxing every scalar would cost one allocation per element of the 262k-entry token arrays.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// Any integer case that fits in `Int`.
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(exactly: v)
        default: nil
        }
    }

    /// Floating-point cases, and integers converted to `Float`.
    public var float: Float? {
        switch self {
        case .float32(let v): v
        case .float64(let v): Float(v)
        case .uint64(let v): Float(v)
        case .int64(let v): Float(v)
        default: int.map(Float.init)
        }
    }

    public var bool: Bool? {
        if case .bool(let v) = self { v } else { nil }
    }

    public var string: String? {
        if case .string(let v) = self { v } else { nil }
    }

    public var array: [GGUFValue]? {
        if case .array(let v) = self { v } else { nil }
    }
}

/// GGUF's numeric ids for value types.
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes one value of this type can occupy; bounds element counts before
    /// anything is allocated for them.
    var minimumByteCount: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}
