/// A bounds-checked little-endian cursor over the mapped file.
///
/// Every read checks the remaining length first, and every count read from the file is checked
/// against the bytes left before anything is allocated for it, so a corrupt file throws instead
/// of trapping or exhausting memory.
struct ByteReader {
    let base: UnsafeRawPointer
    let size: Int
    private(set) var position = 0
    /// What is being read, for error messages, e.g. "metadata 'general.name'".
    var context = "file header"

    init(base: UnsafeRawPointer, size: Int) {
        self.base = base
        self.size = size
    }

    var remaining: Int { size - position }

    func error(_ message: String) -> GGUFError {
        GGUFError("\(message) (at byte \(position), reading \(context))")
    }

    /// Advances past `count` bytes, returning where they start.
    mutating func skip(_ count: Int, for what: @autoclosure () -> String) throws -> Int {
        guard count <= remaining else {
            throw error("file truncated: \(what()) needs \(count) bytes but the file has only \(remaining) left")
        }
        defer { position += count }
        return position
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let start = try skip(MemoryLayout<T>.size, for: String(describing: T.self))
        return T(littleEndian: base.loadUnaligned(fromByteOffset: start, as: T.self))
    }

    /// A UInt64 that must fit in `Int`.
    mutating func readSize(_ what: @autoclosure () -> String) throws -> Int {
        let value = try read(UInt64.self)
        guard let size = Int(exactly: value) else { throw error("\(what()) \(value) is too large") }
        return size
    }

    /// An element count whose elements each need at least `minimumBytes`; impossible counts
    /// are rejected here so callers may reserve capacity for the result.
    mutating func readCount(_ what: @autoclosure () -> String, minimumBytes: Int) throws -> Int {
        let count = try readSize(what())
        guard count <= remaining / minimumBytes else {
            throw error("\(what()) \(count) is impossible: only \(remaining) bytes are left in the file")
        }
        return count
    }

    mutating func readString() throws -> String {
        let length = try readSize("string length")
        let start = try skip(length, for: "a string of \(length) bytes")
        let bytes = UnsafeBufferPointer(
            start: base.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: length)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            position = start
            throw error("invalid UTF-8 in a string of \(length) bytes")
        }
        return string
    }
}
