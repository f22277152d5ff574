/// A set of byte strings stored back to back, with an open-addressing hash index from
/// content to position. Lookups take raw byte buffers so hot loops never build `String`s.
struct ByteStringTable: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var offsets: [Int32] = [0]
    private var slots: [Int32] = []
    private var mask = 0

    var count: Int { offsets.count - 1 }

    init(expectedCount: Int) {
        var capacity = 16
        while capacity < expectedCount * 2 { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        offsets.reserveCapacity(expectedCount + 1)
    }

    subscript(index: Int) -> ArraySlice<UInt8> {
        bytes[Int(offsets[index])..<Int(offsets[index + 1])]
    }

    func length(_ index: Int) -> Int { Int(offsets[index + 1] - offsets[index]) }

    /// Appends a string and returns its index, or the index of an equal string already present.
    @discardableResult
    mutating func insert(_ string: UnsafeBufferPointer<UInt8>) -> (index: Int, inserted: Bool) {
        if count * 2 >= slots.count { grow() }
        var slot = Self.hash(string) & mask
        while true {
            let existing = Int(slots[slot])
            if existing < 0 { break }
            if equals(existing, string) { return (existing, false) }
            slot = (slot + 1) & mask
        }
        let index = count
        bytes.append(contentsOf: string)
        offsets.append(Int32(bytes.count))
        slots[slot] = Int32(index)
        return (index, true)
    }

    @discardableResult
    mutating func insert(_ string: [UInt8]) -> (index: Int, inserted: Bool) {
        string.withUnsafeBufferPointer { insert($0) }
    }

    func index(of string: UnsafeBufferPointer<UInt8>) -> Int? {
        var slot = Self.hash(string) & mask
        while true {
            let existing = Int(slots[slot])
            if existing < 0 { return nil }
            if equals(existing, string) { return existing }
            slot = (slot + 1) & mask
        }
    }

    func index(of string: [UInt8]) -> Int? {
        string.withUnsafeBufferPointer { index(of: $0) }
    }

    func index(of string: String) -> Int? {
        var string = string
        return string.withUTF8 { index(of: $0) }
    }

    private func equals(_ index: Int, _ string: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = Int(offsets[index])
        let length = Int(offsets[index + 1]) - start
        guard length == string.count else { return false }
        return bytes.withUnsafeBufferPointer { stored in
            for i in 0..<length where stored[start + i] != string[i] { return false }
            return true
        }
    }

    private mutating func grow() {
        let capacity = slots.count * 2
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        for index in 0..<count {
            let slotIndex = bytes.withUnsafeBufferPointer { stored in
                Self.hash(UnsafeBufferPointer(rebasing: stored[Int(offsets[index])..<Int(offsets[index + 1])]))
            }
            var slot = slotIndex & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(index)
        }
    }

    /// FNV-1a, then a final mix so the low bits used for the slot are well spread.
    @inline(__always)
    private static func hash(_ string: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in string {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 29
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 32
        return Int(truncatingIfNeeded: hash)
    }
}
