import Foundation
import SparrowEngine

// The request bodies of the OpenAI API as Sparrow reads them. Unknown fields are ignored, as
// OpenAI clients send many; known fields of the wrong type are refused with their path.

/// Fields both generation endpoints take.
struct GenerationFields: Decodable {
    var model: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Float?
    var topP: Float?
    var topK: Int?
    var minP: Float?
    var repeatPenalty: Float?
    var seed: Int64?
    var stop: OneOrMany<String>?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var n: Int?
    /// llama-server's: reuse the slot's cached prefix (default true).
    var cachePrompt: Bool?
    var sparrow: SparrowExtension?

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    enum CodingKeys: String, CodingKey {
        case model, temperature, seed, stop, stream, n, sparrow
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p", topK = "top_k", minP = "min_p"
        case repeatPenalty = "repeat_penalty", streamOptions = "stream_options", cachePrompt = "cache_prompt"
    }
}

/// POST /v1/chat/completions.
struct ChatCompletionRequest: Decodable {
    var messages: [Message]
    var logprobs: Bool?
    var topLogprobs: Int?
    var fields: GenerationFields

    struct Message: Decodable {
        var role: String
        var content: Content

        /// A string, or an array of parts of which the text parts are joined.
        struct Content: Decodable {
            var text: String

            struct Part: Decodable {
                var type: String
                var text: String?
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) {
                    self.text = text
                    return
                }
                let parts = try container.decode([Part].self)
                guard parts.allSatisfy({ $0.type == "text" && $0.text != nil }) else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "only text content parts are supported")
                }
                text = parts.compactMap(\.text).joined()
            }
        }
    }

    enum CodingKeys: String, CodingKey { case messages, logprobs, topLogprobs = "top_logprobs" }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        messages = try container.decode([Message].self, forKey: .messages)
        logprobs = try container.decodeIfPresent(Bool.self, forKey: .logprobs)
        topLogprobs = try container.decodeIfPresent(Int.self, forKey: .topLogprobs)
        fields = try GenerationFields(from: decoder)
    }
}

/// POST /v1/completions.
struct CompletionRequest: Decodable {
    var prompt: Prompt
    /// How many most likely tokens to report per position (the legacy API's integer).
    var logprobs: Int?
    var echo: Bool?
    var fields: GenerationFields

    /// Text, token ids, or a one-element array of either.
    enum Prompt: Decodable {
        case text(String)
        case tokens([Int])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .text(text)
            } else if let tokens = try? container.decode([Int].self) {
                self = .tokens(tokens)
            } else if let texts = try? container.decode([String].self), texts.count == 1 {
                self = .text(texts[0])
            } else if let batches = try? container.decode([[Int]].self), batches.count == 1 {
                self = .tokens(batches[0])
            } else {
                throw DecodingError.typeMismatch(Prompt.self, .init(codingPath: decoder.codingPath, debugDescription:
                    "expected a string or an array of token ids (one prompt per request)"))
            }
        }
    }

    enum CodingKeys: String, CodingKey { case prompt, logprobs, echo }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try container.decode(Prompt.self, forKey: .prompt)
        logprobs = try container.decodeIfPresent(Int.self, forKey: .logprobs)
        echo = try container.decodeIfPresent(Bool.self, forKey: .echo)
        fields = try GenerationFields(from: decoder)
    }
}

/// POST /tokenize.
struct TokenizeRequest: Decodable {
    var content: String
    var addSpecial: Bool?
    enum CodingKeys: String, CodingKey { case content, addSpecial = "add_special" }
}

/// POST /detokenize.
struct DetokenizeRequest: Decodable {
    var tokens: [Int]
}

/// A value or an array of them (`stop`).
struct OneOrMany<Element: Decodable>: Decodable {
    var values: [Element]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(Element.self) {
            values = [one]
        } else {
            values = try container.decode([Element].self)
        }
    }
}

/// Sparrow's per-request extension, `"sparrow": {...}`, and the server's defaults in the same
/// shape: each method is `true`, `false` or an object of settings (unset ones take the
/// server's, then the method's defaults).
public struct SparrowExtension: Decodable, Sendable {
    public var gemfilter: Toggle<GemFilterSettings>?
    public var lookup: Toggle<LookupSettings>?
    public var draft: Toggle<DraftSettings>?
    public var sparsity: Toggle<SparsitySettings>?

    public init(gemfilter: Toggle<GemFilterSettings>? = nil, lookup: Toggle<LookupSettings>? = nil,
                draft: Toggle<DraftSettings>? = nil, sparsity: Toggle<SparsitySettings>? = nil) {
        self.gemfilter = gemfilter
        self.lookup = lookup
        self.draft = draft
        self.sparsity = sparsity
    }

    /// These defaults with a request's choices on top.
    func overridden(by request: SparrowExtension?) -> SparrowExtension {
        guard let request else { return self }
        return SparrowExtension(gemfilter: Toggle.overriding(gemfilter, with: request.gemfilter),
                                lookup: Toggle.overriding(lookup, with: request.lookup),
                                draft: Toggle.overriding(draft, with: request.draft),
                                sparsity: Toggle.overriding(sparsity, with: request.sparsity))
    }
}

/// Settings that a request can partly give, the rest coming from defaults.
public protocol PartialSettings: Decodable, Sendable {
    init()
    /// `self`'s fields where set, else `defaults`'.
    func filling(from defaults: Self) -> Self
}

/// A method switched off, or on with settings.
public enum Toggle<Settings: PartialSettings>: Decodable, Sendable {
    case off
    case on(Settings)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let enabled = try? container.decode(Bool.self) {
            self = enabled ? .on(Settings()) : .off
        } else {
            self = .on(try container.decode(Settings.self))
        }
    }

    public var settings: Settings? {
        if case .on(let settings) = self { return settings }
        return nil
    }

    static func overriding(_ defaults: Toggle?, with request: Toggle?) -> Toggle? {
        guard case .on(let asked) = request else { return request ?? defaults }
        return .on(defaults?.settings.map { asked.filling(from: $0) } ?? asked)
    }
}

public struct GemFilterSettings: PartialSettings {
    public var layer: Int?
    public var keep: Int?
    public var keepEdges: Int?
    public var scoring: String?
    public var window: Int?
    public var attentionWindow: Int?

    public init() {}

    public init(layer: Int?, keep: Int?, keepEdges: Int?, scoring: String?, window: Int?, attentionWindow: Int?) {
        (self.layer, self.keep, self.keepEdges, self.scoring, self.window, self.attentionWindow) = (layer, keep, keepEdges, scoring, window, attentionWindow)
    }

    enum CodingKeys: String, CodingKey {
        case layer, keep, scoring, window, keepEdges = "keep_edges", attentionWindow = "attention_window"
    }

    public func filling(from d: GemFilterSettings) -> GemFilterSettings {
        GemFilterSettings(layer: layer ?? d.layer, keep: keep ?? d.keep, keepEdges: keepEdges ?? d.keepEdges, scoring: scoring ?? d.scoring,
                          window: window ?? d.window, attentionWindow: attentionWindow ?? d.attentionWindow)
    }
}

public struct LookupSettings: PartialSettings {
    public var ngram: Int?
    public var minNgram: Int?
    public var draftMax: Int?
    public var draftMin: Int?

    public init() {}

    public init(ngram: Int?, minNgram: Int?, draftMax: Int?, draftMin: Int?) {
        (self.ngram, self.minNgram, self.draftMax, self.draftMin) = (ngram, minNgram, draftMax, draftMin)
    }

    enum CodingKeys: String, CodingKey { case ngram, minNgram = "min_ngram", draftMax = "draft_max", draftMin = "draft_min" }

    public func filling(from d: LookupSettings) -> LookupSettings {
        LookupSettings(ngram: ngram ?? d.ngram, minNgram: minNgram ?? d.minNgram, draftMax: draftMax ?? d.draftMax, draftMin: draftMin ?? d.draftMin)
    }
}

public struct DraftSettings: PartialSettings {
    public var draftMax: Int?
    public var draftMin: Int?
    public var minP: Float?

    public init() {}

    public init(draftMax: Int?, draftMin: Int?, minP: Float?) {
        (self.draftMax, self.draftMin, self.minP) = (draftMax, draftMin, minP)
    }

    enum CodingKeys: String, CodingKey { case draftMax = "draft_max", draftMin = "draft_min", minP = "min_p" }

    public func filling(from d: DraftSettings) -> DraftSettings {
        DraftSettings(draftMax: draftMax ?? d.draftMax, draftMin: draftMin ?? d.draftMin, minP: minP ?? d.minP)
    }
}

public struct SparsitySettings: PartialSettings {
    public var rule: String?
    public var level: Double?
    /// The candidate head's exact logits per step (0: dense head) and preview rank.
    public var headCandidates: Int?
    public var headRank: Int?
    /// Under TEAL, the fraction of up's rows skipped by the gate (a calibrated level).
    public var upLevel: Double?

    enum CodingKeys: String, CodingKey { case rule, level, headCandidates = "head_candidates", headRank = "head_rank", upLevel = "up_level" }

    public init() {}

    public init(rule: String?, level: Double?, headCandidates: Int? = nil, headRank: Int? = nil, upLevel: Double? = nil) {
        (self.rule, self.level, self.headCandidates, self.headRank, self.upLevel) = (rule, level, headCandidates, headRank, upLevel)
    }

    public func filling(from d: SparsitySettings) -> SparsitySettings {
        SparsitySettings(rule: rule ?? d.rule, level: level ?? d.level, headCandidates: headCandidates ?? d.headCandidates,
                         headRank: headRank ?? d.headRank, upLevel: upLevel ?? d.upLevel)
    }
}
