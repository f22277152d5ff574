import Foundation
import Testing
import SparrowEngine

private func withLogits<R>(_ values: [Float], _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
    values.withUnsafeBufferPointer(body)
}

@Suite struct SamplerTests {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.5]

    /// A draft model's confidence, whatever the sampling settings.
    @Test func topProbabilityIsTheLargestSoftmaxProbability() {
        #expect(abs(withLogits([0, 0]) { topProbability($0) } - 0.5) < 1e-6)
        #expect(abs(withLogits([log(3), 0, -Float.infinity]) { topProbability($0) } - 0.75) < 1e-6)
    }

    @Test func greedyPicksTheLargestLogit() {
        var sampler = Sampler(SamplingParameters())
        #expect(withLogits(logits) { sampler.sample($0, history: []) } == 1)
    }

    @Test func repetitionPenaltyDemotesSeenTokens() {
        var p = SamplingParameters()
        p.repeatPenalty = 1.5  // 3.0 / 1.5 = 2.0 < 2.5
        var sampler = Sampler(p)
        #expect(withLogits(logits) { sampler.sample($0, history: [1]) } == 2)
        // Outside the look-back window the token is not penalised.
        p.repeatLastN = 1
        sampler = Sampler(p)
        #expect(withLogits(logits) { sampler.sample($0, history: [1, 4]) } == 1)
    }

    @Test func sameSeedSameDrawsAndDifferentSeedDifferentDraws() {
        var p = SamplingParameters()
        p.temperature = 1.5
        p.seed = 42
        func draws(_ seed: UInt64) -> [Int] {
            var q = p
            q.seed = seed
            var sampler = Sampler(q)
            return (0..<200).map { _ in withLogits(logits) { sampler.sample($0, history: []) } }
        }
        #expect(draws(42) == draws(42))
        #expect(draws(42) != draws(43))
    }

    @Test func samplingFollowsTheSoftmaxDistribution() {
        var p = SamplingParameters()
        p.temperature = 1
        p.seed = 7
        var sampler = Sampler(p)
        let n = 40_000
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<n { counts[withLogits(logits) { sampler.sample($0, history: []) }] += 1 }
        let exps = logits.map { Double(expf($0)) }
        let total = exps.reduce(0, +)
        for (i, e) in exps.enumerated() {
            let expected = e / total
            let observed = Double(counts[i]) / Double(n)
            // Four standard deviations of a binomial proportion.
            let sigma: Double = (expected * (1 - expected) / Double(n)).squareRoot()
            #expect(abs(observed - expected) < 4 * sigma + 1e-4)
        }
    }

    @Test func filtersRemoveUnlikelyTokens() {
        func seen(_ configure: (inout SamplingParameters) -> Void) -> Set<Int> {
            var p = SamplingParameters()
            p.temperature = 5  // flat enough that every surviving token shows up
            p.seed = 1
            configure(&p)
            var sampler = Sampler(p)
            return Set((0..<2000).map { _ in withLogits(logits) { sampler.sample($0, history: []) } })
        }
        #expect(seen { $0.topK = 2 } == [1, 2])
        #expect(seen { $0.topK = 1 } == [1])
        // softmax(logits): 0.08, 0.57, 0.34, 0.01, 0.05 → top-p 0.8 keeps {1, 2}.
        #expect(seen { $0.topP = 0.8 } == [1, 2])
        // min-p 0.1 of the top: exp(l - 3) >= 0.1 ⇔ l >= 0.70 → {0, 1, 2}.
        #expect(seen { $0.minP = 0.1 } == [0, 1, 2])
        #expect(seen { _ in } == [0, 1, 2, 3, 4])
    }

    @Test func topIndicesMatchesASort() {
        let values = (0..<5000).map { _ in Float.random(in: -10...10) }
        let expected = Array(values.indices.sorted { values[$0] > values[$1] }.prefix(37))
        #expect(withLogits(values) { topIndices($0, count: 37) } == expected)
        #expect(withLogits(values) { topIndices($0, count: 0) } == [])
        #expect(withLogits([1, 2]) { topIndices($0, count: 5) } == [1, 0])
    }

    @Test func logProbabilitiesAreNormalised() {
        let top = withLogits(logits) { topLogProbabilities($0, count: 5) }
        #expect(top.map(\.token) == [1, 2, 0, 4, 3])
        let total = top.map { expf($0.logProbability) }.reduce(0, +)
        #expect(abs(total - 1) < 1e-5)
    }
}

@Suite struct StopStringTests {
    func run(_ pieces: [String], stops: [String]) -> (emitted: String, text: String, stopped: Bool) {
        var scanner = StopStringScanner(stops)
        var emitted = ""
        var stopped = false
        for piece in pieces where !stopped {
            stopped = scanner.append(piece) { emitted += $0 }
        }
        scanner.flush { emitted += $0 }
        return (emitted, scanner.text, stopped)
    }

    @Test func stopStringSplitAcrossPiecesEndsTheText() {
        let r = run(["Hello wor", "ld. ST", "OP here"], stops: ["STOP"])
        #expect(r.stopped)
        #expect(r.text == "Hello world. ")
        #expect(r.emitted == r.text)
    }

    @Test func heldBackPrefixIsReleasedWhenNoStopFollows() {
        var scanner = StopStringScanner(["</answer>"])
        var emitted = ""
        #expect(!scanner.append("x </ans") { emitted += $0 })
        #expect(emitted == "x ")
        #expect(!scanner.append("wer? no") { emitted += $0 })
        scanner.flush { emitted += $0 }
        #expect(emitted == "x </answer? no")
    }

    @Test func earliestOfSeveralStopsWins() {
        let r = run(["a b c d"], stops: ["c", "b"])
        #expect(r.stopped)
        #expect(r.text == "a ")
    }

    @Test func noStopStringsPassEverythingThrough() {
        let r = run(["héllo ", "wörld 🌍"], stops: [])
        #expect(!r.stopped)
        #expect(r.emitted == "héllo wörld 🌍")
    }
}
