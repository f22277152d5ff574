/// A replacement for layers' dense feed-forward blocks on single-token steps (decode): the
/// seam contextual sparsity plugs into. Batches (prefill, verification) stay dense.
public protocol DecodeFeedForward: AnyObject {
    /// Given one token's normed residual at layer `layer`, writes the block's output (before
    /// any post-norm) and returns true; or returns false to let the dense block run.
    func compute(layer: Int, input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) -> Bool
    /// Given one token's normed final hidden state, writes every logit and returns true; or
    /// returns false to let the dense output projection run. The same seam, one step later:
    /// the output projection is the largest matrix a decode step reads.
    func logits(input: UnsafePointer<Float>, into logits: UnsafeMutablePointer<Float>) -> Bool
}

extension DecodeFeedForward {
    public func logits(input: UnsafePointer<Float>, into logits: UnsafeMutablePointer<Float>) -> Bool { false }
}

/// Sees every feed-forward block's input, the residual stream it will add to, and its gate
/// and up projections (before the activation), and the output projection's input, a chunk of
/// rows at a time: what a method calibrates on.
public protocol FeedForwardObserver: AnyObject {
    func observe(layer: Int, input: UnsafePointer<Float>, residual: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                 up: UnsafePointer<Float>, rows: Int)
    /// Sees the output projection's input (the normed final hidden states) of the rows whose
    /// logits are computed.
    func observeHead(input: UnsafePointer<Float>, rows: Int)
}

extension FeedForwardObserver {
    public func observeHead(input: UnsafePointer<Float>, rows: Int) {}
}

/// The feed-forward hooks a session's forward passes use.
struct FeedForwardHooks {
    var decode: (any DecodeFeedForward)?
    var observer: (any FeedForwardObserver)?
}

extension FeedForwardHooks {
    var isEmpty: Bool { decode == nil && observer == nil }
}
