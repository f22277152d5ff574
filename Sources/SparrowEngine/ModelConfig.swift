import SparrowGGUF
import SparrowKernels

/// An error in a model file's contents: unsupported architecture, missing or malformed tensors
/// or hyper-parameters.
public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The transformer families Sparrow runs, and the traits that set them apart.
public enum Architecture: String, Sendable, CaseIterable {
    case llama, qwen2, gemma3

    var ropeLayout: Rope.PairLayout { self == .llama ? .adjacent : .halves }
    var activation: GatedActivation { self == .gemma3 ? .geluTanh : .silu }
}

/// Hyper-parameters read from a GGUF file's `<architecture>.*` metadata.
public struct ModelConfig: Sendable {
    public let architecture: Architecture
    public let layerCount: Int
    public let embeddingSize: Int
    public let feedForwardSize: Int
    public let headCount: Int
    public let kvHeadCount: Int
    public let headDim: Int
    public let vocabularySize: Int
    public let trainedContextLength: Int
    public let normEpsilon: Float
    /// RoPE of the layers that attend over the whole context.
    public let rope: Rope
    /// Gemma 3: most layers attend over a sliding window, with their own RoPE base.
    public let slidingWindow: Int?
    public let slidingWindowRope: Rope?
    /// One layer in `slidingWindowPattern` (the last of each group) attends globally.
    public let slidingWindowPattern: Int
    /// Multiplier applied to token embeddings (Gemma: sqrt of the embedding size).
    public let embeddingScale: Float
    public let attentionScale: Float

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    public init(gguf: GGUFFile) throws {
        guard let name = gguf.string("general.architecture") else {
            throw ModelError("\(gguf.path): missing general.architecture")
        }
        guard let architecture = Architecture(rawValue: name) else {
            let known = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw ModelError("unsupported architecture '\(name)' (Sparrow runs: \(known))")
        }
        func required(_ key: String) throws -> Int {
            guard let value = gguf.int("\(name).\(key)"), value > 0 else {
                throw ModelError("missing or invalid \(name).\(key)")
            }
            return value
        }
        self.architecture = architecture
        layerCount = try required("block_count")
        embeddingSize = try required("embedding_length")
        feedForwardSize = try required("feed_forward_length")
        headCount = try required("attention.head_count")
        kvHeadCount = gguf.int("\(name).attention.head_count_kv") ?? headCount
        headDim = gguf.int("\(name).attention.key_length") ?? embeddingSize / headCount
        guard kvHeadCount > 0, headCount % kvHeadCount == 0, headDim > 0, headDim % 2 == 0 else {
            throw ModelError("inconsistent attention heads: \(headCount) query, \(kvHeadCount) key/value, dim \(headDim)")
        }
        if let valueDim = gguf.int("\(name).attention.value_length"), valueDim != headDim {
            throw ModelError("key length \(headDim) differs from value length \(valueDim): unsupported")
        }
        vocabularySize = gguf.int("\(name).vocab_size") ?? gguf.stringArray("tokenizer.ggml.tokens")?.count ?? 0
        trainedContextLength = try required("context_length")
        normEpsilon = gguf.float("\(name).attention.layer_norm_rms_epsilon") ?? 1e-5
        let ropeDimensions = gguf.int("\(name).rope.dimension_count") ?? headDim
        let ropeBase = gguf.float("\(name).rope.freq_base") ?? 10_000
        var positionScale: Float = 1
        if gguf.string("\(name).rope.scaling.type") == "linear", let factor = gguf.float("\(name).rope.scaling.factor"), factor > 0 {
            positionScale = 1 / factor
        }
        rope = Rope(layout: architecture.ropeLayout, dimensions: ropeDimensions, base: ropeBase, positionScale: positionScale)
        if architecture == .gemma3 {
            slidingWindow = gguf.int("\(name).attention.sliding_window")
            // Gemma 3's local layers use base 10000 and no scaling; the GGUF does not record it.
            slidingWindowRope = Rope(layout: .halves, dimensions: ropeDimensions, base: 10_000)
            slidingWindowPattern = 6
            embeddingScale = Float(embeddingSize).squareRoot()
        } else {
            slidingWindow = nil
            slidingWindowRope = nil
            slidingWindowPattern = 1
            embeddingScale = 1
        }
        attentionScale = 1 / Float(headDim).squareRoot()
    }

    /// Whether `layer` attends over a sliding window rather than the whole context.
    public func usesSlidingWindow(layer: Int) -> Bool {
        slidingWindow != nil && layer % slidingWindowPattern < slidingWindowPattern - 1
    }
}
