import SparrowKernels

/// A draft model's output projection, read mostly through a one-bit sketch: the sketch ranks
/// every token (about an eighth of a Q8_0 head's bytes), and only the top `candidates` get
/// exact logits. The draft's argmax is then the full head's whenever that token ranks among
/// them, and a miss only costs a rejected draft: the target verifies every token.
///
/// How often it ranks there depends on the model (Qwen2.5-Coder-0.5B, 600 real steps: always
/// within the top 32; SmolLM2-135M: 86% within the top 64), so the head audits itself: the
/// first `trialSteps` steps and one in `auditInterval` after also run the full projection, and
/// from the end of the trial on, once more than one audited step in `toleratedMissesPer`
/// missed, the sketch is dropped and every logit computed.
public final class SketchedHead: LogitShortlist, @unchecked Sendable {
    public let candidates: Int
    /// Enough that on Qwen 0.5B the full head's argmax was always among them (it was within
    /// 32), while their exact rows cost little (64 of 151936).
    public static let defaultCandidates = 64
    static let trialSteps = 16, auditInterval = 16, toleratedMissesPer = 16
    private let sketch: SignSketch
    private let output: WeightMatrix
    private let matmul: MatMul
    private let scores: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    private var ids: [Int32]
    private var steps = 0
    public private(set) var audits = 0, misses = 0
    /// Whether the sketch still ranks (false once the audits found it missing too often).
    public private(set) var isActive = true

    public init(output: WeightMatrix, candidates: Int, pool: ThreadPool) {
        precondition(candidates > 0, "a sketched head needs at least one candidate")
        self.candidates = min(candidates, output.rows)
        sketch = SignSketch(output, pool: pool)
        self.output = output
        matmul = MatMul(pool: pool)
        scores = .allocate(capacity: output.rows)
        scratch = .allocate(capacity: output.rows)
        ids = [Int32](repeating: 0, count: self.candidates)
    }

    deinit {
        scores.deallocate()
        scratch.deallocate()
    }

    public func candidates(for hidden: UnsafePointer<Float>) -> [Int32]? {
        guard isActive else { return nil }
        defer { steps += 1 }
        sketch.scores(hidden, into: scores, pool: matmul.pool)
        ids.withUnsafeMutableBufferPointer { Selection.largest(candidates, of: scores, count: sketch.rows, scratch: scratch, into: $0.baseAddress!) }
        if steps < Self.trialSteps || steps % Self.auditInterval == 0 { audit(hidden) }
        return isActive ? ids : nil
    }

    /// Checks that the full projection's argmax is among this step's candidates.
    private func audit(_ hidden: UnsafePointer<Float>) {
        matmul(output, hidden, tokens: 1, into: scratch)
        audits += 1
        if !ids.contains(Int32(argmax(UnsafeBufferPointer(start: scratch, count: output.rows)))) { misses += 1 }
        if audits >= Self.trialSteps { isActive = misses * Self.toleratedMissesPer <= audits }
    }
}
