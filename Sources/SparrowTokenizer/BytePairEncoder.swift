/// GPT-2's reversible map between bytes and printable Unicode scalars: byte-level BPE
/// vocabularies spell every byte as one scalar (a space is "Ġ", U+0120).
enum ByteLevelEncoding {
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    static let byteForScalar: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in scalarForByte.enumerated() { map[scalar] = UInt8(byte) }
        return map
    }()

    /// The UTF-8 spelling of one byte in the vocabulary's alphabet.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String(Unicode.Scalar($0)!).utf8) }
}

/// The merge step of byte-level BPE, run on one pre-tokenized word at a time.
///
/// Symbols are numbered: vocabulary strings keep their token id, and any other string a merge
/// mentions gets an id past the vocabulary, so merging compares integers, never strings.
struct BytePairEncoder: Sendable {
    private let vocabularySize: Int
    private let byteSymbols: [Int32]
    /// (left symbol << 32 | right symbol) -> (rank << 32 | merged symbol)
    private let merges: [UInt64: UInt64]
    /// Vocabulary-alphabet spelling of symbols that are not tokens, indexed from `vocabularySize`.
    private let extraSymbols: ByteStringTable
    private let singleByteTokens: [Int32]

    init(texts: ByteStringTable, merges mergeStrings: [String]) {
        vocabularySize = texts.count
        var extra = ByteStringTable(expectedCount: 16)
        func symbol(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
            if let id = texts.index(of: bytes) { return Int32(id) }
            return Int32(texts.count + extra.insert(bytes).index)
        }

        byteSymbols = ByteLevelEncoding.utf8ForByte.map { spelling in
            spelling.withUnsafeBufferPointer { symbol($0) }
        }

        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(mergeStrings.count)
        var joined = [UInt8](repeating: 0, count: 256)
        for (rank, mergeString) in mergeStrings.enumerated() {
            var mergeString = mergeString
            mergeString.withUTF8 { merge in
                // llama.cpp splits at the first space after the first byte.
                guard merge.count >= 3, let split = merge[1...].firstIndex(of: UInt8(ascii: " ")) else { return }
                let left = symbol(UnsafeBufferPointer(rebasing: merge[..<split]))
                let right = symbol(UnsafeBufferPointer(rebasing: merge[(split + 1)...]))
                let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
                guard merges[key] == nil else { return }
                let joinedCount = merge.count - 1
                if joined.count < joinedCount { joined = [UInt8](repeating: 0, count: joinedCount) }
                let result: Int32 = joined.withUnsafeMutableBufferPointer { buffer in
                    for i in 0..<split { buffer[i] = merge[i] }
                    for i in (split + 1)..<merge.count { buffer[i - 1] = merge[i] }
                    return symbol(UnsafeBufferPointer(rebasing: buffer[..<joinedCount]))
                }
                merges[key] = UInt64(rank) << 32 | UInt64(UInt32(result))
            }
        }
        self.merges = merges
        extraSymbols = extra
        singleByteTokens = (0..<256).map { byte in
            Int32(texts.index(of: [UInt8(byte)]) ?? -1)
        }
    }

    private struct Candidate: Comparable {
        /// rank << 32 | left position: lowest rank first, then leftmost, as llama.cpp orders them.
        let key: UInt64
        let right: Int32
        let leftSymbol: Int32
        let rightSymbol: Int32
        let merged: Int32

        static func < (a: Candidate, b: Candidate) -> Bool { a.key < b.key }
        static func == (a: Candidate, b: Candidate) -> Bool { a.key == b.key }
    }

    /// Appends the tokens of one word, given as raw UTF-8 bytes.
    func encode(_ word: [UInt8], into output: inout [Int]) {
        let count = word.count
        guard count > 0 else { return }
        var symbols = word.map { byteSymbols[Int($0)] }
        var next = (0..<count).map { Int32($0 + 1) }
        var prev = (0..<count).map { Int32($0 - 1) }
        next[count - 1] = -1
        var alive = [Bool](repeating: true, count: count)
        var queue = PriorityQueue<Candidate>()

        func consider(_ left: Int32, _ right: Int32) {
            guard left >= 0, right >= 0 else { return }
            let leftSymbol = symbols[Int(left)]
            let rightSymbol = symbols[Int(right)]
            let key = UInt64(UInt32(leftSymbol)) << 32 | UInt64(UInt32(rightSymbol))
            guard let merge = merges[key] else { return }
            queue.push(Candidate(
                key: (merge >> 32) << 32 | UInt64(left), right: right,
                leftSymbol: leftSymbol, rightSymbol: rightSymbol,
                merged: Int32(truncatingIfNeeded: merge)))
        }

        for i in 1..<count { consider(Int32(i - 1), Int32(i)) }
        while let candidate = queue.pop() {
            let left = Int(candidate.key & 0xFFFF_FFFF)
            let right = Int(candidate.right)
            // Skip pairs that an earlier merge has changed.
            guard alive[left], alive[right], symbols[left] == candidate.leftSymbol,
                  symbols[right] == candidate.rightSymbol else { continue }
            symbols[left] = candidate.merged
            alive[right] = false
            next[left] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(left) }
            consider(prev[left], Int32(left))
            consider(Int32(left), next[left])
        }

        var position: Int32 = 0
        while position >= 0 {
            let symbol = Int(symbols[Int(position)])
            if symbol < vocabularySize {
                output.append(symbol)
            } else {
                // Not a token: llama.cpp looks up each byte of its spelling as a one-byte token.
                for byte in extraSymbols[symbol - vocabularySize] where singleByteTokens[Int(byte)] >= 0 {
                    output.append(Int(singleByteTokens[Int(byte)]))
                }
            }
            position = next[Int(position)]
        }
    }
}
