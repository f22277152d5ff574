import Foundation

/// Sampling options with llama.cpp's meanings; each filter's neutral value switches it off.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 or less picks the most likely token (greedy).
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    /// Drop tokens less likely than minP times the most likely one (0: none).
    public var minP: Float = 0
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1: off).
    public var repeatPenalty: Float = 1
    /// How many recent tokens the repetition penalty looks at.
    public var repeatLastN: Int = 64
    public var seed: UInt64 = UInt64.random(in: 0...UInt64.max)

    public init() {}
}

/// A next-token distribution over a few candidates (every other token has probability 0),
/// most likely first.
public struct TokenDistribution: Sendable, Equatable {
    public var tokens: [Int]
    public var probabilities: [Float]

    public init(tokens: [Int], probabilities: [Float]) {
        self.tokens = tokens
        self.probabilities = probabilities
    }

    /// All the mass on one token (greedy decoding, or a deterministic draft).
    public static func certain(_ token: Int) -> TokenDistribution { TokenDistribution(tokens: [token], probabilities: [1]) }

    public func probability(of token: Int) -> Float {
        tokens.firstIndex(of: token).map { probabilities[$0] } ?? 0
    }

    /// max(0, self - other), renormalised: what speculative sampling draws from after
    /// rejecting a draft from `other`. Nil when nothing is left (self ≤ other everywhere).
    public func residual(after other: TokenDistribution) -> TokenDistribution? {
        var kept: [(Int, Float)] = []
        for (token, p) in zip(tokens, probabilities) {
            let left = p - other.probability(of: token)
            if left > 0 { kept.append((token, left)) }
        }
        let total = kept.reduce(0) { $0 + $1.1 }
        guard total > 0 else { return nil }
        return TokenDistribution(tokens: kept.map(\.0), probabilities: kept.map { $0.1 / total })
    }
}

/// Picks next tokens from logits; the same parameters and seed give the same choices.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: Xoshiro256
    private var adjusted: [Float] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = Xoshiro256(seed: parameters.seed)
    }

    public var isGreedy: Bool { parameters.temperature <= 0 }

    /// Chooses the next token given the logits and the tokens seen so far (prompt + output).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int]) -> Int {
        draw(from: distribution(logits, history: history))
    }

    /// The distribution `sample` draws from: the repetition penalty, then greedy's certainty or
    /// temperature with the top-k, top-p and min-p filters.
    public mutating func distribution(_ logits: UnsafeBufferPointer<Float>, history: some Collection<Int>) -> TokenDistribution {
        let p = parameters
        if isGreedy && !penalizes { return .certain(argmax(logits)) }
        adjust(logits, history: history)
        if isGreedy {
            return .certain(adjusted.withUnsafeBufferPointer { argmax($0) })
        }

        // Candidates in descending order of logit.
        var candidates = adjusted.withUnsafeBufferPointer { values in
            p.topK > 0 ? topIndices(values, count: p.topK) : Array(values.indices).sorted { values[$0] > values[$1] }
        }
        var weights = candidates.map { adjusted[$0] - adjusted[candidates[0]] }.map(expf)
        if p.topP < 1 {
            let total = weights.reduce(0, +)
            var cumulative: Float = 0
            var keep = candidates.count
            for (i, w) in weights.enumerated() {
                cumulative += w / total
                if cumulative >= p.topP { keep = i + 1; break }
            }
            candidates.removeSubrange(keep...)
            weights.removeSubrange(keep...)
        }
        if p.minP > 0 {
            // weights are relative to the most likely token, whose weight is 1.
            let keep = max(1, weights.prefix { $0 >= p.minP }.count)
            candidates.removeSubrange(keep...)
            weights.removeSubrange(keep...)
        }
        let top = adjusted[candidates[0]]
        let scaled = candidates.map { expf((adjusted[$0] - top) / p.temperature) }
        let total = scaled.reduce(0, +)
        return TokenDistribution(tokens: candidates, probabilities: scaled.map { $0 / total })
    }

    private var penalizes: Bool { parameters.repeatPenalty != 1 && parameters.repeatLastN > 0 }

    /// `adjusted` = the logits with the repetition penalty applied.
    private mutating func adjust(_ logits: UnsafeBufferPointer<Float>, history: some Collection<Int>) {
        let p = parameters
        adjusted.removeAll(keepingCapacity: true)
        adjusted.append(contentsOf: logits)
        if penalizes {
            for token in Set(history.suffix(p.repeatLastN)) where token >= 0 && token < adjusted.count {
                let l = adjusted[token]
                adjusted[token] = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty
            }
        }
    }

    /// One token drawn from `distribution` (no randomness used when it is certain).
    public mutating func draw(from distribution: TokenDistribution) -> Int {
        guard distribution.tokens.count > 1 else { return distribution.tokens[0] }
        var threshold = uniform()
        for (token, probability) in zip(distribution.tokens, distribution.probabilities) {
            threshold -= probability
            if threshold < 0 { return token }
        }
        return distribution.tokens[distribution.tokens.count - 1]
    }

    /// A uniform draw in [0, 1) from this sampler's seeded generator.
    public mutating func uniform() -> Float { Float.random(in: 0..<1, using: &random) }
}

/// The largest softmax probability of `logits`: how sure the model is of its first choice.
public func topProbability(_ logits: UnsafeBufferPointer<Float>) -> Float {
    guard let top = logits.max() else { return 0 }
    var total: Float = 0
    for l in logits { total += expf(l - top) }
    return 1 / total
}

/// Index of the largest value (the first one on ties, as llama.cpp's greedy sampler).
public func argmax(_ values: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    var bestValue = -Float.infinity
    for (i, v) in values.enumerated() where v > bestValue {
        best = i
        bestValue = v
    }
    return best
}

/// Indices of the `count` largest values, largest first.
public func topIndices(_ values: UnsafeBufferPointer<Float>, count: Int) -> [Int] {
    let k = min(count, values.count)
    guard k > 0 else { return [] }
    // A size-k min-heap keeps this O(n log k) over vocabularies of 100k+ tokens.
    var heap: [Int] = []
    heap.reserveCapacity(k)
    func less(_ a: Int, _ b: Int) -> Bool { values[a] < values[b] || (values[a] == values[b] && a > b) }
    func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(heap[l], heap[m]) { m = l }
            if r < heap.count, less(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
    for i in values.indices {
        if heap.count < k {
            heap.append(i)
            var c = heap.count - 1
            while c > 0, less(heap[c], heap[(c - 1) / 2]) {
                heap.swapAt(c, (c - 1) / 2)
                c = (c - 1) / 2
            }
        } else if less(heap[0], i) {
            heap[0] = i
            siftDown(0)
        }
    }
    return heap.sorted { less($1, $0) }
}

/// The `count` most likely tokens with their log-probabilities under softmax(logits).
public func topLogProbabilities(_ logits: UnsafeBufferPointer<Float>, count: Int) -> [(token: Int, logProbability: Float)] {
    let logNormaliser = logSoftmaxNormaliser(logits)
    return topIndices(logits, count: count).map { ($0, logits[$0] - logNormaliser) }
}

/// log Σ exp(logits): a token's log-probability under softmax(logits) is its logit minus this.
public func logSoftmaxNormaliser(_ logits: UnsafeBufferPointer<Float>) -> Float {
    let maxLogit = logits.max() ?? 0
    var sum: Double = 0
    for l in logits { sum += Double(expf(l - maxLogit)) }
    return maxLogit + Float(log(sum))
}

/// xoshiro256**: small, fast and reproducible across platforms for a given seed.
struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}
