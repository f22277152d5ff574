import Testing
@testable import SparrowTokenizer

/// Special ids and end-of-generation sets as llama.cpp reports them when loading each model.
struct ModelVocabularyTests {
    @Test(.enabled(if: ModelFixtures.hasModel("smollm2-135m"), "smollm2-135m.gguf is not in ~/.cache/sparrow/models"))
    func smollm() throws {
        let tokenizer = try #require(ModelFixtures.smollm)
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.bosToken == 1)
        #expect(tokenizer.eosToken == 2)
        #expect(!tokenizer.addsBOS)
        #expect(tokenizer.endOfGenerationTokens == [0, 2, 4])  // <|endoftext|>, <|im_end|>, <reponame>
        #expect(tokenizer.token(forText: "<|im_end|>") == 2)
        #expect(tokenizer.isEndOfGeneration(2) && !tokenizer.isEndOfGeneration(1))
    }

    @Test(.enabled(if: ModelFixtures.hasModel("qwen2.5-coder-0.5b"), "qwen2.5-coder-0.5b.gguf is not in ~/.cache/sparrow/models"))
    func qwen() throws {
        let tokenizer = try #require(ModelFixtures.qwen)
        #expect(tokenizer.vocabularySize == 151936)
        #expect(tokenizer.bosToken == 151643)
        #expect(tokenizer.eosToken == 151645)
        #expect(!tokenizer.addsBOS)
        // llama.cpp also stops on </s> (a normal token it promotes to control) and the FIM pad/repo/file tokens.
        #expect(tokenizer.endOfGenerationTokens == [128247, 151643, 151645, 151662, 151663, 151664])
        #expect(tokenizer.tokenText(128247) == "</s>")
        #expect(tokenizer.encode("a</s>", addSpecial: false, parseSpecial: true) == [64, 128247])
        #expect(tokenizer.tokenBytes(128247).isEmpty)
    }

    @Test(.enabled(if: ModelFixtures.hasModel("gemma3-270m"), "gemma3-270m.gguf is not in ~/.cache/sparrow/models"))
    func gemma() throws {
        let tokenizer = try #require(ModelFixtures.gemma)
        #expect(tokenizer.vocabularySize == 262144)
        #expect(tokenizer.bosToken == 2)
        #expect(tokenizer.eosToken == 1)
        #expect(tokenizer.addsBOS)
        #expect(tokenizer.endOfGenerationTokens == [1, 106, 212])  // <eos>, <end_of_turn>, </s>
        #expect(tokenizer.encode("").first == 2)
        #expect(tokenizer.tokenText(236743) == "▁")
        #expect(tokenizer.tokenBytes(236743) == [UInt8(ascii: " ")])
        #expect(tokenizer.tokenBytes(tokenizer.token(forText: "<0x41>")!) == [0x41])
    }
}
