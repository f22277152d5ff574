/// Token attributes, following llama.cpp's `llama_token_attr` bits.
struct TokenAttributes: OptionSet, Sendable {
    let rawValue: UInt8
    static let unknown = TokenAttributes(rawValue: 1 << 0)
    static let unused = TokenAttributes(rawValue: 1 << 1)
    static let normal = TokenAttributes(rawValue: 1 << 2)
    static let control = TokenAttributes(rawValue: 1 << 3)
    static let userDefined = TokenAttributes(rawValue: 1 << 4)
    static let byte = TokenAttributes(rawValue: 1 << 5)

    /// From a GGUF `tokenizer.ggml.token_type` value.
    init(tokenType: Int) {
        switch tokenType {
        case 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = []
        }
    }

    init(rawValue: UInt8) { self.rawValue = rawValue }
}

/// The tokenizer-relevant GGUF metadata, decoupled from the file so it can be built in tests.
struct VocabularySource: Sendable {
    var model: String
    var preType: String?
    var tokens: [String]
    var scores: [Float]?
    var tokenTypes: [Int]?
    var merges: [String]?
    var bosID: Int?
    var eosID: Int?
    var eotID: Int?
    var eomID: Int?
    var fimPadID: Int?
    var fimRepoID: Int?
    var fimSeparatorID: Int?
    var addBOS: Bool?
    var addEOS: Bool?
    var addSpacePrefix: Bool?
}

enum VocabularyKind: Sendable {
    case bytePairEncoding(PreTokenizer)
    case sentencePiece
}

/// Token texts, attributes and special-token rules, derived the way llama.cpp's
/// `llama_vocab::impl::load` derives them.
struct Vocabulary: Sendable {
    let kind: VocabularyKind
    let texts: ByteStringTable
    let attributes: [TokenAttributes]
    let scores: [Float]
    let bosToken: Int?
    let eosToken: Int?
    let addsBOS: Bool
    let addsEOS: Bool
    let addsSpacePrefix: Bool
    let endOfGeneration: Set<Int>
    /// Control, user-defined and unknown tokens, longest text first.
    let specialTokens: [Int]

    var count: Int { texts.count }

    init(_ source: VocabularySource) throws {
        let count = source.tokens.count
        guard count > 0 else { throw TokenizerError("the vocabulary (tokenizer.ggml.tokens) is empty") }

        var addSpacePrefix = false
        var addBOS = false
        var defaultBOS: Int?
        var defaultEOS: Int?
        switch source.model {
        case "gpt2":
            guard let pre = PreTokenizer(preType: source.preType) else {
                throw TokenizerError("unsupported pre-tokenizer type '\(source.preType ?? "")' for a gpt2 (byte-level BPE) vocabulary")
            }
            guard source.merges != nil else {
                throw TokenizerError("a gpt2 (byte-level BPE) vocabulary needs tokenizer.ggml.merges")
            }
            kind = .bytePairEncoding(pre)
            defaultBOS = 11
            defaultEOS = 11
        case "llama":
            kind = .sentencePiece
            addSpacePrefix = true
            addBOS = true
            defaultBOS = 1
            defaultEOS = 2
        default:
            throw TokenizerError("unsupported tokenizer model '\(source.model)' (supported: gpt2, llama)")
        }
        addsSpacePrefix = source.addSpacePrefix ?? addSpacePrefix

        if let scores = source.scores, scores.count < count {
            throw TokenizerError("tokenizer.ggml.scores has \(scores.count) entries for \(count) tokens")
        }
        if let types = source.tokenTypes, types.count < count {
            throw TokenizerError("tokenizer.ggml.token_type has \(types.count) entries for \(count) tokens")
        }
        scores = source.scores.map { Array($0.prefix(count)) } ?? [Float](repeating: 0, count: count)

        var texts = ByteStringTable(expectedCount: count)
        for (id, token) in source.tokens.enumerated() {
            var text = token.isEmpty ? "[EMPTY_\(id)]" : token
            let (existing, inserted) = text.withUTF8 { texts.insert($0) }
            if !inserted {
                throw TokenizerError("duplicate token in vocabulary: '\(token)' has ids \(existing) and \(id)")
            }
        }
        self.texts = texts

        var attributes = source.tokenTypes.map { types in
            (0..<count).map { TokenAttributes(tokenType: types[$0]) }
        } ?? [TokenAttributes](repeating: .normal, count: count)

        func validID(_ id: Int?) -> Int? {
            guard let id, id >= 0, id < count else { return nil }
            return id
        }
        bosToken = validID(source.bosID) ?? validID(defaultBOS)
        eosToken = validID(source.eosID) ?? validID(defaultEOS)
        addsBOS = source.addBOS ?? addBOS
        addsEOS = source.addEOS ?? false
        if addsBOS && bosToken == nil {
            throw TokenizerError("tokenizer.ggml.add_bos_token is true, but there is no valid BOS token id")
        }
        if addsEOS && eosToken == nil {
            throw TokenizerError("tokenizer.ggml.add_eos_token is true, but there is no valid EOS token id")
        }

        endOfGeneration = Vocabulary.endOfGenerationTokens(
            source: source, texts: texts, attributes: &attributes,
            eos: eosToken, validID: validID)

        self.attributes = attributes
        specialTokens = (0..<count)
            .filter { !attributes[$0].isDisjoint(with: [.control, .userDefined, .unknown]) }
            .sorted { texts.length($0) != texts.length($1) ? texts.length($0) > texts.length($1) : $0 < $1 }
    }

    func text(_ token: Int) -> String {
        String(decoding: texts[token], as: UTF8.self)
    }

    func id(of text: String) -> Int? { texts.index(of: text) }

    /// llama.cpp recognises end-of-turn and fill-in-the-middle tokens by their text, marks them
    /// as control tokens, and collects the end-of-generation set from them.
    private static func endOfGenerationTokens(
        source: VocabularySource, texts: ByteStringTable, attributes: inout [TokenAttributes],
        eos: Int?, validID: (Int?) -> Int?
    ) -> Set<Int> {
        func ids(of candidates: [String]) -> [Int] { candidates.compactMap { texts.index(of: $0) } }

        let eotTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"]
        let fimTexts: [[String]] = [
            ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"],
            ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"],
            ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"],
        ]
        let fimPadTexts = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
        let fimRepoTexts = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
        let fimSeparatorTexts = ["<|file_sep|>"]
        let eogTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                        "<｜end▁of▁sentence｜>", "[e~["]

        // When an id is not in the metadata, llama.cpp takes the first text match; with several
        // candidates present its pick follows hash-map order, so any present candidate is as good.
        func detect(_ metadataID: Int?, _ candidates: [String]) -> Int? {
            if let id = validID(metadataID) { return id }
            guard let id = ids(of: candidates).first else { return nil }
            attributes[id].insert(.control)
            return id
        }
        let eot = detect(source.eotID, eotTexts)
        let eom = detect(source.eomID, ["<|eom_id|>"])
        for candidates in fimTexts { _ = detect(nil, candidates) }
        let fimPad = detect(source.fimPadID, fimPadTexts)
        let fimRepo = detect(source.fimRepoID, fimRepoTexts)
        let fimSeparator = detect(source.fimSeparatorID, fimSeparatorTexts)

        for id in 0..<attributes.count where attributes[id].contains(.control) && !attributes[id].contains(.unused) {
            if texts[id].contains(subsequence: Array("unused".utf8)) {
                attributes[id].insert(.unused)
            }
        }

        var set = Set([fimPad, fimRepo, fimSeparator].compactMap { $0 })
        for id in ids(of: eogTexts) {
            set.insert(id)
            attributes[id].insert(.control)
        }
        for id in ids(of: ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]) {
            attributes[id] = .userDefined
        }
        for id in [eos, eot, eom].compactMap({ $0 }) { set.insert(id) }

        // gpt-oss and solar-open use <|end|> between messages, not to stop.
        let eogTextsPresent = Set(set.map { String(decoding: texts[$0], as: UTF8.self) })
        let hasCall = eogTextsPresent.contains("<|call|>") || eogTextsPresent.contains("<|calls|>")
        if let end = texts.index(of: "<|end|>"), set.contains(end), hasCall,
           eogTextsPresent.contains("<|return|>") || eogTextsPresent.contains("<|flush|>") {
            set.remove(end)
            attributes[end] = .userDefined
        }
        // Gemma 4 uses </s> as ordinary text.
        if eogTextsPresent.contains("<|tool_response>"), let s = texts.index(of: "</s>"), set.contains(s) {
            set.remove(s)
            attributes[s] = .normal
        }
        return set
    }
}

extension ArraySlice where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        var start = startIndex
        while start + subsequence.count <= endIndex {
            if self[start..<(start + subsequence.count)].elementsEqual(subsequence) { return true }
            start += 1
        }
        return false
    }
}
