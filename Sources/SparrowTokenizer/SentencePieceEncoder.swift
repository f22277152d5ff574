/// llama.cpp's SentencePiece-style tokenizer: start from UTF-8 characters, repeatedly merge
/// the adjacent pair whose concatenation is the highest-scoring vocabulary token, then spell
/// characters that never became tokens as `<0xNN>` byte tokens.
struct SentencePieceEncoder: Sendable {
    private let texts: ByteStringTable
    private let scores: [Float]
    private let byteTokens: [Int32]

    init(texts: ByteStringTable, scores: [Float]) {
        self.texts = texts
        self.scores = scores
        let hexDigits = Array("0123456789ABCDEF".utf8)
        byteTokens = (0..<256).map { byte in
            let spelled = Array("<0x".utf8) + [hexDigits[byte >> 4], hexDigits[byte & 15], UInt8(ascii: ">")]
            // llama.cpp falls back to the byte itself when the vocabulary lacks <0xNN>.
            return Int32(texts.index(of: spelled) ?? texts.index(of: [UInt8(byte)]) ?? -1)
        }
    }

    private struct Candidate: Comparable {
        let score: Float
        let left: Int32
        let right: Int32
        let length: Int32

        /// Highest score first, then leftmost, as llama.cpp's queue orders them.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.score > b.score || (a.score == b.score && a.left < b.left)
        }
    }

    /// Appends the tokens for `text`, which must already have spaces escaped as U+2581.
    func encode(_ text: [UInt8], into output: inout [Int]) {
        guard !text.isEmpty else { return }
        var starts: [Int32] = []
        var lengths: [Int32] = []
        var offset = 0
        while offset < text.count {
            let length = min(utf8SequenceLength(text[offset]), text.count - offset)
            starts.append(Int32(offset))
            lengths.append(Int32(length))
            offset += length
        }
        let count = starts.count
        var next = (0..<count).map { Int32($0 + 1) }
        var prev = (0..<count).map { Int32($0 - 1) }
        next[count - 1] = -1
        var queue = PriorityQueue<Candidate>()

        text.withUnsafeBufferPointer { bytes in
            func consider(_ left: Int32, _ right: Int32) {
                guard left >= 0, right >= 0 else { return }
                let start = Int(starts[Int(left)])
                let length = Int(lengths[Int(left)] + lengths[Int(right)])
                guard let token = texts.index(of: UnsafeBufferPointer(rebasing: bytes[start..<(start + length)])) else { return }
                queue.push(Candidate(score: scores[token], left: left, right: right, length: Int32(length)))
            }

            for i in 1..<count { consider(Int32(i - 1), Int32(i)) }
            while let candidate = queue.pop() {
                let left = Int(candidate.left)
                let right = Int(candidate.right)
                // A pair is stale once either side has grown or been absorbed; sizes only grow.
                guard lengths[left] > 0, lengths[right] > 0,
                      lengths[left] + lengths[right] == candidate.length else { continue }
                lengths[left] += lengths[right]
                lengths[right] = 0
                next[left] = next[right]
                if next[right] >= 0 { prev[Int(next[right])] = Int32(left) }
                consider(prev[left], Int32(left))
                consider(Int32(left), next[left])
            }

            var position: Int32 = 0
            while position >= 0 {
                let start = Int(starts[Int(position)])
                let piece = UnsafeBufferPointer(rebasing: bytes[start..<(start + Int(lengths[Int(position)]))])
                if let token = texts.index(of: piece) {
                    output.append(token)
                } else {
                    for byte in piece where byteTokens[Int(byte)] >= 0 {
                        output.append(Int(byteTokens[Int(byte)]))
                    }
                }
                position = next[Int(position)]
            }
        }
    }
}

/// Sequence length announced by a UTF-8 lead byte, as llama.cpp's `unicode_len_utf8` reads it.
@inline(__always)
func utf8SequenceLength(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}
