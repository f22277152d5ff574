import Testing
@testable import SparrowTokenizer

/// The pre-tokenizer scanners on crafted strings, with splits worked out from llama.cpp's
/// regex semantics.
struct PreTokenizerTests {
    func words(_ preTokenizer: PreTokenizer, _ text: String) -> [String] {
        let scalars = text.unicodeScalars.map(\.value)
        return preTokenizer.split(scalars).map { range in
            String(String.UnicodeScalarView(scalars[range].map { Unicode.Scalar($0)! }))
        }
    }

    @Test func gpt2() {
        #expect(words(.gpt2, "Hello world's") == ["Hello", " world", "'s"])
        #expect(words(.gpt2, "I'M") == ["I", "'", "M"])  // contractions are case-sensitive
        #expect(words(.gpt2, "a  b") == ["a", " ", " b"])
        #expect(words(.gpt2, "x 123 4567") == ["x", " 123", " 4567"])
        #expect(words(.gpt2, "end  ") == ["end", "  "])
        #expect(words(.gpt2, "!!\n\nok") == ["!!", "\n", "\n", "ok"])
        #expect(words(.gpt2, "naïve café") == ["naïve", " café"])
        #expect(words(.gpt2, "e\u{301}") == ["e", "\u{301}"])  // a combining mark is not a letter
    }

    @Test func smollmIsolatesEveryDigit() {
        #expect(words(.smollm, "abc 123") == ["abc", " ", "1", "2", "3"])
        #expect(words(.smollm, "v2.0") == ["v", "2", ".", "0"])
        #expect(words(.smollm, "٣x²") == ["٣", "x", "²"])
        #expect(words(.smollm, "it's") == ["it", "'s"])
    }

    @Test func qwen2() {
        #expect(words(.qwen2, "I'M here") == ["I", "'M", " here"])
        #expect(words(.qwen2, "x  y") == ["x", " ", " y"])
        #expect(words(.qwen2, "2024") == ["2", "0", "2", "4"])
        #expect(words(.qwen2, "a, b!?\n\nc") == ["a", ",", " b", "!?\n\n", "c"])
        #expect(words(.qwen2, "  \n  x") == ["  \n", " ", " x"])
        #expect(words(.qwen2, "hello\tworld") == ["hello", "\tworld"])
        #expect(words(.qwen2, "end \u{3000}") == ["end", " \u{3000}"])  // ideographic space is \s
    }

    @Test func defaultCascade() {
        #expect(words(.standard, "12345") == ["123", "45"])
        #expect(words(.standard, "a+b=c") == ["a", "+", "b", "=", "c"])
        #expect(words(.standard, "x 42") == ["x", " ", "42"])
    }

    @Test func codepointFlags() {
        #expect(CodepointFlags(UInt32(0x41)).isLetter)
        #expect(CodepointFlags(UInt32(0x0663)).isNumber)
        #expect(CodepointFlags(UInt32(0x85)).isWhitespace)
        #expect(!CodepointFlags(UInt32(0x1C)).isWhitespace)
        #expect(CodepointFlags(UInt32(0x301)).contains(.accentMark))
        // U+1C89 is a letter only since Unicode 16; llama.cpp's 15.1 tables call it undefined.
        #expect(CodepointFlags(UInt32(0x1C89)) == .undefined)
        #expect(CodepointFlags(UInt32(0x1C89)).isOther)
    }
}
