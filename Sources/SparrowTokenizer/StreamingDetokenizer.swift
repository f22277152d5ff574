/// Turns tokens into text as they are generated, holding back bytes until they form whole
/// UTF-8 characters, so a character split across tokens is emitted once it is complete.
///
/// The concatenated output equals `Tokenizer.decode` for models that do not clean up
/// spaces while detokenizing (llama.cpp does that only for the "default" and "gpt-2" pre types).
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []
    private var isFirst = true

    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// Newly completed text (possibly "").
    public mutating func append(_ token: Int) -> String {
        pending.append(contentsOf: tokenizer.piece(token, renderSpecial: false, isFirst: isFirst))
        isFirst = false
        let end = completePrefixLength(pending)
        guard end > 0 else { return "" }
        let text = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Remaining bytes; any that never formed a valid character become U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}

/// Length of the prefix that can be decoded now: everything except a trailing sequence that is
/// still a valid but incomplete UTF-8 character. Invalid bytes are not held back; they decode
/// to U+FFFD exactly as they would in the whole text, because the split falls before a lead byte.
func completePrefixLength(_ bytes: [UInt8]) -> Int {
    let count = bytes.count
    var start = count - 1
    while start >= 0 && start >= count - 4 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
    guard start >= 0 else { return count }
    let lead = bytes[start]
    let needed: Int
    var secondRange: ClosedRange<UInt8> = 0x80...0xBF
    switch lead {
    case 0xC2...0xDF: needed = 2
    case 0xE0: needed = 3; secondRange = 0xA0...0xBF
    case 0xE1...0xEC, 0xEE...0xEF: needed = 3
    case 0xED: needed = 3; secondRange = 0x80...0x9F
    case 0xF0: needed = 4; secondRange = 0x90...0xBF
    case 0xF1...0xF3: needed = 4
    case 0xF4: needed = 4; secondRange = 0x80...0x8F
    default: return count
    }
    let available = count - start
    guard available < needed else { return count }
    if available >= 2 && !secondRange.contains(bytes[start + 1]) { return count }
    return start
}
