import SparrowGGUF

extension Tokenizer {
    /// Builds the tokenizer described by a model file's `tokenizer.ggml.*` metadata.
    public init(gguf: GGUFFile) throws {
        try self.init(source: VocabularySource(gguf: gguf))
    }
}

extension VocabularySource {
    init(gguf: GGUFFile) throws {
        let prefix = "tokenizer.ggml."
        guard let model = gguf.string(prefix + "model") else {
            throw TokenizerError("\(gguf.path): missing tokenizer.ggml.model")
        }
        guard let tokens = gguf.stringArray(prefix + "tokens") else {
            throw TokenizerError("\(gguf.path): missing or malformed tokenizer.ggml.tokens (an array of strings)")
        }
        func optionalArray<T>(_ key: String, _ read: (String) -> [T]?, _ kind: String) throws -> [T]? {
            guard gguf.metadata[prefix + key] != nil else { return nil }
            guard let values = read(prefix + key) else {
                throw TokenizerError("\(gguf.path): tokenizer.ggml.\(key) is not an array of \(kind)")
            }
            return values
        }
        self.init(
            model: model,
            preType: gguf.string(prefix + "pre"),
            tokens: tokens,
            scores: try optionalArray("scores", gguf.floatArray, "numbers"),
            tokenTypes: try optionalArray("token_type", gguf.intArray, "integers"),
            merges: try optionalArray("merges", gguf.stringArray, "strings"),
            bosID: gguf.int(prefix + "bos_token_id"),
            eosID: gguf.int(prefix + "eos_token_id"),
            eotID: gguf.int(prefix + "eot_token_id"),
            eomID: gguf.int(prefix + "eom_token_id"),
            fimPadID: gguf.int(prefix + "fim_pad_token_id"),
            fimRepoID: gguf.int(prefix + "fim_rep_token_id"),
            fimSeparatorID: gguf.int(prefix + "fim_sep_token_id"),
            addBOS: gguf.bool(prefix + "add_bos_token"),
            addEOS: gguf.bool(prefix + "add_eos_token"),
            addSpacePrefix: gguf.bool(prefix + "add_space_prefix"))
    }
}
