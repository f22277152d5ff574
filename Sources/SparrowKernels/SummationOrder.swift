/// The order in which a multi-token call sums each token's products. Float sums round
/// differently in different orders, so the order decides whose results a batch reproduces bit
/// for bit.
public enum SummationOrder: Sendable {
    /// llama.cpp's for a batch of this size (its batch kernels), so prefill logits match the
    /// reference's.
    case referenceBatch
    /// The order of a one-token call, so a batch of tokens gives exactly the logits of as many
    /// decode steps: speculative verification then accepts exactly what plain greedy decoding
    /// would have produced.
    case singleToken
}
