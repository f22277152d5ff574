import Foundation
import Testing
@testable import SparrowTokenizer

struct StreamingDetokenizerTests {
    static let texts = [
        "Emoji 😀👍🏽 and flags 🇫🇷🇯🇵, family 👨‍👩‍👧‍👦.",
        "中文测试：你好，世界！日本語のテキスト。한국어 텍스트",
        "Mixed: café, naïve, Ωμέγα, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🧑🏿‍💻 done",
    ]

    @Test(arguments: ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"])
    func streamingEqualsWholeDecode(model: String) throws {
        guard let tokenizer = ModelFixtures.tokenizer(model) else { return }  // model file absent
        var sawHeldBackToken = false
        for text in Self.texts {
            let ids = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var streamed = ""
            for id in ids {
                let piece = stream.append(id)
                if piece.isEmpty && !tokenizer.tokenBytes(id).isEmpty { sawHeldBackToken = true }
                #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "\(model): emitted a partial character")
                streamed += piece
            }
            streamed += stream.finish()
            #expect(streamed == tokenizer.decode(ids))
            #expect(streamed == text, "\(model) round trip")
        }
        #expect(sawHeldBackToken, "\(model): no token ended inside a character; the test lost its point")
    }

    /// A byte-fallback vocabulary, so a character can be split into one token per byte.
    static func byteTokenizer() throws -> Tokenizer {
        let tokens = ["<unk>", "<s>", "</s>", "▁a"] + (0..<256).map { String(format: "<0x%02X>", $0) }
        return try Tokenizer(source: VocabularySource(
            model: "llama", tokens: tokens, scores: [Float](repeating: 0, count: tokens.count),
            tokenTypes: [2, 3, 3, 1] + [Int](repeating: 6, count: 256), addBOS: false, addSpacePrefix: false))
    }

    @Test func holdsBackSplitCharacterUntilComplete() throws {
        let tokenizer = try Self.byteTokenizer()
        let ids = tokenizer.encode("é😀", addSpecial: false)
        #expect(ids == [0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80].map { $0 + 4 })
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(ids.map { stream.append($0) } == ["", "é", "", "", "", "😀"])
        #expect(stream.finish() == "")
    }

    @Test func finishReplacesIncompleteTail() throws {
        let tokenizer = try Self.byteTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(stream.append(3) == " a")  // "▁a"; no space prefix to strip in this vocabulary
        #expect(stream.append(0xF0 + 4) == "")
        #expect(stream.append(0x9F + 4) == "")
        #expect(stream.finish() == "\u{FFFD}")
    }

    @Test func invalidBytesAreNotHeldBack() throws {
        let tokenizer = try Self.byteTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(stream.append(0x80 + 4) == "\u{FFFD}")  // a lone continuation byte can never complete
        #expect(stream.append(0xE0 + 4) == "")
        #expect(stream.append(0x41 + 4) == "\u{FFFD}A")  // E0 followed by 'A' is invalid at once
        #expect(stream.finish() == "")
    }

    @Test func completePrefixLengths() {
        #expect(completePrefixLength([]) == 0)
        #expect(completePrefixLength([0x41, 0xE4, 0xB8]) == 1)
        #expect(completePrefixLength([0xE4, 0xB8, 0xAD]) == 3)
        #expect(completePrefixLength([0xF0, 0x9F, 0x98]) == 0)
        #expect(completePrefixLength([0xED, 0xA0]) == 2)  // would be a surrogate: invalid, not held
        #expect(completePrefixLength([0xC0]) == 1)
    }
}
