public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A tokenizer built from GGUF metadata that produces llama.cpp's token ids.
public struct Tokenizer: Sendable {
    private enum Encoder: Sendable {
        case bytePair(BytePairEncoder, PreTokenizer)
        case sentencePiece(SentencePieceEncoder)
    }

    private let vocabulary: Vocabulary
    private let encoder: Encoder
    private let specialSplitter: SpecialTokenSplitter

    init(source: VocabularySource) throws {
        vocabulary = try Vocabulary(source)
        switch vocabulary.kind {
        case .bytePairEncoding(let preTokenizer):
            encoder = .bytePair(BytePairEncoder(texts: vocabulary.texts, merges: source.merges ?? []), preTokenizer)
        case .sentencePiece:
            encoder = .sentencePiece(SentencePieceEncoder(texts: vocabulary.texts, scores: vocabulary.scores))
        }
        specialSplitter = SpecialTokenSplitter(vocabulary: vocabulary)
    }

    public var vocabularySize: Int { vocabulary.count }

    /// The first token id at which the two vocabularies differ (size or a token's bytes), or
    /// nil when they are the same: what lets one model draft for another.
    public func firstDifference(from other: Tokenizer) -> Int? {
        let shared = min(vocabulary.count, other.vocabulary.count)
        if let token = (0..<shared).first(where: { vocabulary.texts[$0] != other.vocabulary.texts[$0] }) { return token }
        return vocabulary.count == other.vocabulary.count ? nil : shared
    }
    public var bosToken: Int? { vocabulary.bosToken }
    public var eosToken: Int? { vocabulary.eosToken }
    public var addsBOS: Bool { vocabulary.addsBOS }

    public func isEndOfGeneration(_ token: Int) -> Bool {
        vocabulary.endOfGeneration.contains(token)
    }

    /// The end-of-generation tokens, sorted.
    public var endOfGenerationTokens: [Int] { vocabulary.endOfGeneration.sorted() }

    /// - Parameters:
    ///   - addSpecial: add BOS/EOS where the model asks for them.
    ///   - parseSpecial: recognise control tokens written in the text (user-defined tokens are
    ///     always recognised, as in llama.cpp).
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int] {
        let bytes = Array(text.utf8)
        var output: [Int] = []
        output.reserveCapacity(bytes.count / 3 + 2)
        if addSpecial && vocabulary.addsBOS, let bos = vocabulary.bosToken {
            output.append(bos)
        }
        let fragments = specialSplitter.split(bytes, parseSpecial: parseSpecial)
        switch encoder {
        case .bytePair(let encoder, let preTokenizer):
            var cache: [ArraySlice<UInt8>: [Int]] = [:]
            for fragment in fragments {
                switch fragment {
                case .token(let token):
                    output.append(token)
                case .text(let range):
                    let (scalars, offsets) = decodeScalars(bytes, range)
                    for word in preTokenizer.split(scalars) {
                        let wordBytes = bytes[offsets[word.lowerBound]..<offsets[word.upperBound]]
                        if let cached = cache[wordBytes] {
                            output.append(contentsOf: cached)
                        } else {
                            var tokens: [Int] = []
                            encoder.encode(Array(wordBytes), into: &tokens)
                            cache[wordBytes] = tokens
                            output.append(contentsOf: tokens)
                        }
                    }
                }
            }
        case .sentencePiece(let encoder):
            // llama.cpp prefixes a space to text that starts the input or follows a special token.
            var followsSpecial = true
            for fragment in fragments {
                switch fragment {
                case .token(let token):
                    output.append(token)
                    followsSpecial = true
                case .text(let range):
                    var escaped: [UInt8] = []
                    escaped.reserveCapacity(range.count + 3)
                    if vocabulary.addsSpacePrefix && followsSpecial { escaped.append(contentsOf: escapedSpace) }
                    for byte in bytes[range] {
                        if byte == UInt8(ascii: " ") {
                            escaped.append(contentsOf: escapedSpace)
                        } else {
                            escaped.append(byte)
                        }
                    }
                    encoder.encode(escaped, into: &output)
                    followsSpecial = false
                }
            }
        }
        if addSpecial && vocabulary.addsEOS, let eos = vocabulary.eosToken {
            output.append(eos)
        }
        return output
    }

    /// Text of a token sequence, as llama.cpp's `llama_detokenize` gives it with
    /// `remove_special = false` and `unparse_special = renderSpecial`.
    public func decode(_ tokens: [Int], renderSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for (index, token) in tokens.enumerated() {
            bytes.append(contentsOf: piece(token, renderSpecial: renderSpecial, isFirst: index == 0))
        }
        if case .bytePair(_, let preTokenizer) = encoder, preTokenizer.cleansSpaces {
            bytes = cleanUpSpaces(bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes a token contributes to output text (empty for control tokens).
    public func tokenBytes(_ token: Int) -> [UInt8] {
        piece(token, renderSpecial: false, isFirst: false)
    }

    /// The raw vocabulary string, e.g. "Ġthe" or "▁the".
    public func tokenText(_ token: Int) -> String {
        guard token >= 0 && token < vocabulary.count else { return "" }
        return vocabulary.text(token)
    }

    /// Exact vocabulary lookup.
    public func token(forText text: String) -> Int? {
        vocabulary.id(of: text)
    }

    /// llama.cpp's `token_to_piece`; the first token of a sequence loses one leading space
    /// when the model adds a space prefix while encoding.
    func piece(_ token: Int, renderSpecial: Bool, isFirst: Bool) -> [UInt8] {
        guard token >= 0 && token < vocabulary.count else { return [] }
        let attributes = vocabulary.attributes[token]
        let text = vocabulary.texts[token]
        var piece: [UInt8]
        if !attributes.isDisjoint(with: [.unknown, .control]) && !renderSpecial {
            return []
        } else if !attributes.isDisjoint(with: [.unknown, .control, .userDefined]) {
            piece = Array(text)
        } else if attributes.contains(.normal) {
            switch encoder {
            case .bytePair: piece = decodeByteLevel(text)
            case .sentencePiece: piece = unescapeSpaces(text)
            }
        } else if attributes.contains(.byte) {
            piece = byteTokenValue(text).map { [$0] } ?? []
        } else {
            return []
        }
        if isFirst && vocabulary.addsSpacePrefix && piece.first == UInt8(ascii: " ") {
            piece.removeFirst()
        }
        return piece
    }
}

private let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]

private func unescapeSpaces(_ text: ArraySlice<UInt8>) -> [UInt8] {
    var result: [UInt8] = []
    result.reserveCapacity(text.count)
    var index = text.startIndex
    while index < text.endIndex {
        if text[index] == 0xE2 && index + 2 < text.endIndex && text[index + 1] == 0x96 && text[index + 2] == 0x81 {
            result.append(UInt8(ascii: " "))
            index += 3
        } else {
            result.append(text[index])
            index += 1
        }
    }
    return result
}

/// Maps a byte-level BPE token spelling back to raw bytes; scalars outside the byte alphabet
/// come out as llama.cpp writes them, "[UNK_BYTE_0x…" followed by the token text and "]".
private func decodeByteLevel(_ text: ArraySlice<UInt8>) -> [UInt8] {
    var result: [UInt8] = []
    result.reserveCapacity(text.count)
    for scalar in String(decoding: text, as: UTF8.self).unicodeScalars {
        if let byte = ByteLevelEncoding.byteForScalar[scalar.value] {
            result.append(byte)
        } else {
            result.append(contentsOf: Array("[UNK_BYTE_0x".utf8))
            for byte in String(scalar).utf8 {
                result.append(contentsOf: Array(hex2(byte).utf8))
            }
            result.append(contentsOf: text)
            result.append(UInt8(ascii: "]"))
        }
    }
    return result
}

private func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}

/// The value of a `<0xNN>` byte token.
private func byteTokenValue(_ text: ArraySlice<UInt8>) -> UInt8? {
    guard text.count >= 6 else { return nil }
    let digits = String(decoding: text.dropFirst(3).prefix(2), as: UTF8.self)
    return UInt8(digits, radix: 16)
}

/// llama.cpp's `clean_up_tokenization_spaces` passes, byte for byte.
private func cleanUpSpaces(_ input: [UInt8]) -> [UInt8] {
    let space = UInt8(ascii: " ")
    let quote = UInt8(ascii: "'")
    guard !input.isEmpty else { return input }

    // " ?", " !", " .", " ," lose the space.
    var first: [UInt8] = [input[0]]
    for i in 1..<input.count {
        let x = input[i]
        if input[i - 1] == space && (x == UInt8(ascii: "?") || x == UInt8(ascii: "!") || x == UInt8(ascii: ".") || x == UInt8(ascii: ",")) {
            first.removeLast()
        }
        first.append(x)
    }

    // " ' " loses both spaces.
    var source = first
    var second: [UInt8] = [source[0]]
    var i = 1
    while i < source.count {
        let x = source[i]
        if x == quote && i + 1 < source.count && source[i - 1] == space && source[i + 1] == space {
            second.removeLast()
            i += 1
            source[i] = 0
        }
        second.append(x)
        i += 1
    }

    // " 's", " 'm", " 're", " 've" lose the space.
    var third: [UInt8] = [second[0]]
    for i in 1..<second.count {
        let x = second[i]
        if second[i - 1] == space && x == quote && i + 1 < second.count {
            let x1 = second[i + 1]
            if x1 == UInt8(ascii: "s") || x1 == UInt8(ascii: "m") {
                third.removeLast()
            } else if x1 != UInt8(ascii: "t") && x1 != UInt8(ascii: "d") && i + 2 < second.count {
                let x2 = second[i + 2]
                if (x1 == UInt8(ascii: "r") || x1 == UInt8(ascii: "v")) && x2 == UInt8(ascii: "e") {
                    third.removeLast()
                }
            }
        }
        third.append(x)
    }
    return third
}

/// Decodes valid UTF-8 into scalar values, with the byte offset of each scalar plus the end.
private func decodeScalars(_ bytes: [UInt8], _ range: Range<Int>) -> (scalars: [UInt32], offsets: [Int]) {
    var scalars: [UInt32] = []
    var offsets: [Int] = []
    scalars.reserveCapacity(range.count)
    offsets.reserveCapacity(range.count + 1)
    var index = range.lowerBound
    while index < range.upperBound {
        let lead = bytes[index]
        let length = min(utf8SequenceLength(lead), range.upperBound - index)
        var value: UInt32
        switch length {
        case 2: value = UInt32(lead & 0x1F)
        case 3: value = UInt32(lead & 0x0F)
        case 4: value = UInt32(lead & 0x07)
        default: value = UInt32(lead)
        }
        if length > 1 {
            for k in 1..<length { value = value << 6 | UInt32(bytes[index + k] & 0x3F) }
        }
        scalars.append(value)
        offsets.append(index)
        index += length
    }
    offsets.append(range.upperBound)
    return (scalars, offsets)
}
