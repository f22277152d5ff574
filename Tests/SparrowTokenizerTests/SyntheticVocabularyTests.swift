import Testing
@testable import SparrowTokenizer

/// Small hand-made vocabularies that pin down merge order, byte fallback, special-token
/// matching and the errors, without a model file.
struct SyntheticVocabularyTests {
    static let byteAlphabet = ByteLevelEncoding.scalarForByte.map { String(Unicode.Scalar($0)!) }

    static func bytePairTokenizer(merges: [String], extra: [String] = [], types: [Int]? = nil) throws -> Tokenizer {
        let tokens = byteAlphabet + extra
        return try Tokenizer(source: VocabularySource(
            model: "gpt2", preType: "gpt-2", tokens: tokens, tokenTypes: types, merges: merges))
    }

    @Test func bytePairMergesFollowRank() throws {
        let a = Int(UInt8(ascii: "a"))
        let byRankAB = try Self.bytePairTokenizer(merges: ["a b", "b c"], extra: ["ab", "bc"])
        #expect(byRankAB.encode("abc") == [256, Int(UInt8(ascii: "c"))])
        let byRankBC = try Self.bytePairTokenizer(merges: ["b c", "a b"], extra: ["ab", "bc"])
        #expect(byRankBC.encode("abc") == [a, 257])
        let chained = try Self.bytePairTokenizer(merges: ["a b", "ab c"], extra: ["ab", "abc"])
        #expect(chained.encode("abc abc") == [257, Int(UInt8(ascii: " ")), 257])
        #expect(chained.decode([257, 32, 257]) == "abc abc")
    }

    @Test func bytePairSpellsSpacesWithTheByteAlphabet() throws {
        let tokenizer = try Self.bytePairTokenizer(merges: ["Ġ a"], extra: ["Ġa"])
        #expect(tokenizer.encode("a a") == [Int(UInt8(ascii: "a")), 256])
        #expect(tokenizer.tokenText(256) == "Ġa")
        #expect(tokenizer.tokenBytes(256) == Array(" a".utf8))
        #expect(tokenizer.decode(tokenizer.encode("héllo\n")) == "héllo\n")
    }

    @Test func specialTokensLongestFirstAndUserDefinedAlways() throws {
        // "<ab>" is a control token, "b>" a user-defined one.
        let types = [Int](repeating: 1, count: 256) + [3, 4]
        let tokenizer = try Self.bytePairTokenizer(merges: [], extra: ["<ab>", "b>"], types: types)
        let x = Int(UInt8(ascii: "x"))
        #expect(tokenizer.encode("x<ab>", parseSpecial: true) == [x, 256])
        #expect(tokenizer.encode("x<ab>", parseSpecial: false) == [x, Int(UInt8(ascii: "<")), Int(UInt8(ascii: "a")), 257])
        #expect(tokenizer.decode([x, 256]) == "x")
        #expect(tokenizer.decode([x, 256], renderSpecial: true) == "x<ab>")
        #expect(tokenizer.decode([257]) == "b>")
    }

    static func sentencePieceTokenizer(abScore: Float) throws -> Tokenizer {
        let bytes = (0..<256).map { "<0x" + String($0, radix: 16, uppercase: true).leftPadded(to: 2) + ">" }
        let tokens = ["<unk>", "<s>", "</s>"] + bytes + ["▁", "a", "b", "▁a", "ab"]
        let scores = [Float](repeating: 0, count: 3 + 256) + [-5, -5, -5, -1, abScore]
        let types = [2, 3, 3] + [Int](repeating: 6, count: 256) + [Int](repeating: 1, count: 5)
        return try Tokenizer(source: VocabularySource(model: "llama", tokens: tokens, scores: scores, tokenTypes: types))
    }

    @Test func sentencePieceMergesByScore() throws {
        let low = try Self.sentencePieceTokenizer(abScore: -2)
        #expect(low.addsBOS && low.bosToken == 1)
        #expect(low.encode("ab") == [1, 262, 261])  // <s> ▁a b
        let high = try Self.sentencePieceTokenizer(abScore: 0)
        #expect(high.encode("ab") == [1, 259, 263])  // <s> ▁ ab
        #expect(high.encode("ab", addSpecial: false) == [259, 263])
        // The space prefix is stripped again from the first piece when decoding.
        #expect(high.decode([259, 263]) == "ab")
    }

    @Test func sentencePieceFallsBackToBytes() throws {
        let tokenizer = try Self.sentencePieceTokenizer(abScore: -2)
        #expect(tokenizer.encode("é", addSpecial: false) == [259, 3 + 0xC3, 3 + 0xA9])
        #expect(tokenizer.decode([259, 3 + 0xC3, 3 + 0xA9]) == "é")
        // As in llama.cpp, only the very first token loses its space, and here that is <s>.
        #expect(tokenizer.decode([1, 259, 3 + 0xC3, 3 + 0xA9]) == " é")
    }

    @Test func rejectsWhatItCannotTokenize() {
        #expect(throws: TokenizerError.self) {
            try Tokenizer(source: VocabularySource(model: "bert", tokens: ["a"]))
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(source: VocabularySource(model: "gpt2", preType: "no-such-pre", tokens: ["a"], merges: []))
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(source: VocabularySource(model: "gpt2", preType: "gpt-2", tokens: ["a"]))
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(source: VocabularySource(model: "llama", tokens: ["a", "b", "a"]))
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(source: VocabularySource(model: "llama", tokens: ["a"], scores: []))
        }
    }
}

private extension String {
    func leftPadded(to length: Int) -> String {
        String(repeating: "0", count: max(0, length - count)) + self
    }
}
