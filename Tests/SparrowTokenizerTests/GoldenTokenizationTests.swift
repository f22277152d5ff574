import Foundation
import Testing
@testable import SparrowTokenizer

/// llama.cpp's own tokenisations (Tests/Fixtures/golden/<model>/tokenize.json, made by
/// scripts/make_goldens.py) reproduced id for id.
struct GoldenTokenizationTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let name: String
            let text: String
            let add_special: Bool
            let parse_special: Bool
            let ids: [Int]
            let detokenized: String
        }
        let cases: [Case]
    }

    static func fixture(_ model: String) throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/golden/\(model)/tokenize.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    @Test("smollm2-135m ids match llama.cpp", .enabled(if: ModelFixtures.hasModel("smollm2-135m"),
                                                       "smollm2-135m.gguf is not in ~/.cache/sparrow/models"))
    func smollm() throws { try checkIDs("smollm2-135m") }

    @Test("qwen2.5-coder-0.5b ids match llama.cpp", .enabled(if: ModelFixtures.hasModel("qwen2.5-coder-0.5b"),
                                                             "qwen2.5-coder-0.5b.gguf is not in ~/.cache/sparrow/models"))
    func qwen() throws { try checkIDs("qwen2.5-coder-0.5b") }

    @Test("gemma3-270m ids match llama.cpp", .enabled(if: ModelFixtures.hasModel("gemma3-270m"),
                                                      "gemma3-270m.gguf is not in ~/.cache/sparrow/models"))
    func gemma() throws { try checkIDs("gemma3-270m") }

    private func checkIDs(_ model: String) throws {
        let tokenizer = try #require(ModelFixtures.tokenizer(model))
        let fixture = try Self.fixture(model)
        #expect(fixture.cases.count > 100)
        for testCase in fixture.cases {
            let ids = tokenizer.encode(testCase.text, addSpecial: testCase.add_special, parseSpecial: testCase.parse_special)
            #expect(ids == testCase.ids,
                    "\(model) \(testCase.name) add_special=\(testCase.add_special) parse_special=\(testCase.parse_special)")
            // The fixture's text is llama-server's /detokenize: every piece with specials rendered.
            #expect(tokenizer.decode(testCase.ids, renderSpecial: true) == testCase.detokenized, "\(model) \(testCase.name)")
            if testCase.detokenized == testCase.text && !testCase.add_special {
                #expect(tokenizer.decode(ids, renderSpecial: true) == testCase.text, "round trip \(model) \(testCase.name)")
            }
        }
    }
}
