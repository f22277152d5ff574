/// A piece of input after special tokens have been cut out of it.
enum TextFragment: Equatable {
    case text(Range<Int>)
    case token(Int)
}

/// Cuts special tokens out of text the way llama.cpp's `tokenizer_st_partition` does: each
/// special token in turn, longest first, is matched left to right in every remaining piece of
/// plain text. Control and unknown tokens take part only when parsing specials; user-defined
/// tokens always do.
struct SpecialTokenSplitter: Sendable {
    private let texts: ByteStringTable
    /// Special tokens in llama.cpp's matching order, with whether they need parse_special.
    private let ordered: [(token: Int, needsParseSpecial: Bool)]
    /// Byte trie over special token texts, used to find which ones occur at all.
    private var trieChildren: [[UInt8: Int32]] = [[:]]
    private var trieToken: [Int32] = [-1]

    init(vocabulary: Vocabulary) {
        texts = vocabulary.texts
        ordered = vocabulary.specialTokens.map { token in
            (token, !vocabulary.attributes[token].isDisjoint(with: [.control, .unknown]))
        }
        for (rank, entry) in ordered.enumerated() {
            var node = 0
            for byte in texts[entry.token] {
                if let child = trieChildren[node][byte] {
                    node = Int(child)
                } else {
                    trieChildren.append([:])
                    trieToken.append(-1)
                    trieChildren[node][byte] = Int32(trieChildren.count - 1)
                    node = trieChildren.count - 1
                }
            }
            trieToken[node] = Int32(rank)
        }
    }

    func split(_ text: [UInt8], parseSpecial: Bool) -> [TextFragment] {
        guard !text.isEmpty else { return [] }
        var fragments: [TextFragment] = [.text(0..<text.count)]
        // Only tokens that occur somewhere in the text can split it, so find those first
        // instead of searching the text once per special token (Gemma has thousands).
        for rank in occurringRanks(in: text) {
            let entry = ordered[rank]
            if entry.needsParseSpecial && !parseSpecial { continue }
            let needle = Array(texts[entry.token])
            var result: [TextFragment] = []
            result.reserveCapacity(fragments.count + 2)
            for fragment in fragments {
                guard case .text(let range) = fragment else {
                    result.append(fragment)
                    continue
                }
                var start = range.lowerBound
                while let match = firstMatch(of: needle, in: text, range: start..<range.upperBound) {
                    if match > start { result.append(.text(start..<match)) }
                    result.append(.token(entry.token))
                    start = match + needle.count
                }
                if start < range.upperBound { result.append(.text(start..<range.upperBound)) }
            }
            fragments = result
        }
        return fragments
    }

    private func occurringRanks(in text: [UInt8]) -> [Int] {
        var found = Set<Int>()
        for start in text.indices {
            var node = 0
            var position = start
            while position < text.count, let child = trieChildren[node][text[position]] {
                node = Int(child)
                position += 1
                if trieToken[node] >= 0 { found.insert(Int(trieToken[node])) }
            }
        }
        return found.sorted()
    }

    private func firstMatch(of needle: [UInt8], in text: [UInt8], range: Range<Int>) -> Int? {
        guard let first = needle.first, range.count >= needle.count else { return nil }
        var position = range.lowerBound
        let last = range.upperBound - needle.count
        while position <= last {
            if text[position] == first {
                var matched = true
                for i in 1..<needle.count where text[position + i] != needle[i] {
                    matched = false
                    break
                }
                if matched { return position }
            }
            position += 1
        }
        return nil
    }
}
