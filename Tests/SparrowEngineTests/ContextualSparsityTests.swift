import Foundation
@testable import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

@Suite(.serialized) struct ContextualSparsityTests {
    /// With every neuron selected, the sparse kernels (selected gate and up rows, selected
    /// columns of down's int8 copy) give the block's output: against the exact product with
    /// the model's own down weights, their error (the copy's re-quantisation) is under 1% and
    /// no worse than the dense kernels' (which quantise the activations to int8). TEAL with
    /// up's rows chosen by the gate runs the selected-rows path for up.
    @Test(arguments: ["smollm2-135m", "qwen2.5-coder-0.5b"], [(SparsityRule.cats, 0.0), (.teal, 0), (.teal, 0.5)])
    func everyNeuronSelectedMatchesTheDenseBlock(_ name: String, rule: (SparsityRule, upSparsity: Double)) throws {
        let model = try catalogModel(name), c = model.config
        let pool = ThreadPool(threadCount: 2), matmul = MatMul(pool: pool)
        let sparsity = try ContextualSparsity(model: model.transformer, sidecar: try selectEverythingSidecar(model, sha256: "test"),
                                              rule: rule.0, sparsity: 0.5, upSparsity: rule.upSparsity, pool: pool)
        #expect(sparsity.upSparsity == rule.upSparsity)
        #expect(sparsity.layerSparsity.allSatisfy { $0 == 0.5 })
        var rng = SplitMix64(seed: 3)
        let input = (0..<c.embeddingSize).map { _ in Float.random(in: -2...2, using: &rng) }
        for l in [0, c.layerCount / 2, c.layerCount - 1] {
            let layer = model.transformer.layers[l]
            var gate = [Float](repeating: 0, count: c.feedForwardSize), up = gate
            var dense = [Float](repeating: 0, count: c.embeddingSize), sparse = dense
            matmul(layer.gate, input, tokens: 1, into: &gate)
            matmul(layer.up, input, tokens: 1, into: &up)
            c.architecture.activation.apply(gate: &gate, up: up, count: c.feedForwardSize)
            matmul(layer.down, gate, tokens: 1, into: &dense)
            #expect(sparsity.compute(layer: l, input: input, into: &sparse))
            var exact = [Double](repeating: 0, count: c.embeddingSize), row = [Float](repeating: 0, count: c.feedForwardSize)
            for r in 0..<c.embeddingSize {
                layer.down.dequantizeRow(r, into: &row)
                exact[r] = zip(row, gate).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            func relativeError(_ v: [Float]) -> Double {
                zip(v, exact).reduce(0.0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }.squareRoot()
                    / exact.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
            }
            #expect(relativeError(sparse) < 0.01, "\(name) layer \(l): sparse error \(relativeError(sparse))")
            #expect(relativeError(sparse) <= relativeError(dense), "\(name) layer \(l): sparse \(relativeError(sparse)), dense \(relativeError(dense))")
        }
    }

    /// Decode steps run the candidate head: with every token a candidate, a step's logits are
    /// the dense step's bit for bit; with about half of them, that many logits are the dense
    /// ones exactly (the selected rows sum as the one-token product does) and the rest are the
    /// preview's.
    /// Multi-token batches keep the dense head, bit for bit.
    @Test func candidateHeadLogitsAreExactForTheCandidates() throws {
        let model = try catalogModel("smollm2-135m"), pool = ThreadPool(threadCount: 2), d = model.config.embeddingSize
        var identity = [Double](repeating: 0, count: d * d)
        for i in 0..<d { identity[i * d + i] = 1 }
        let factors = HeadPreview.factors(output: model.transformer.output, secondMoments: identity, rank: 64, pool: pool)
        let sidecar = try selectEverythingSidecar(model, sha256: "test", head: (factors.project, factors.expand, 64))
        let prompt = model.tokenizer.encode("It is a truth universally acknowledged, that a single man", addSpecial: false, parseSpecial: false)
        let vocab = model.transformer.vocabularySize
        func logits(candidates: Int?) throws -> (batch: [Float], step: [Float]) {
            let session = Session(model: model.transformer, contextSize: 64, pool: pool)
            if let candidates {
                let method = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: .teal, sparsity: 0,
                                                    headCandidates: candidates, headRank: 64, pool: pool)
                #expect(method.weightBytesPerToken < model.transformer.weightBytesPerToken || candidates == vocab)
                session.decodeFeedForward = method
            }
            let batch = Array(try session.evaluate(Array(prompt.dropLast())).last)
            return (batch, Array(try session.evaluate([prompt.last!]).last))
        }
        let dense = try logits(candidates: nil), all = try logits(candidates: vocab), half = try logits(candidates: vocab / 2)
        #expect(all.batch == dense.batch && half.batch == dense.batch)
        func matching(_ step: [Float]) -> Int { zip(step, dense.step).filter { $0 == $1 }.count }
        #expect(matching(all.step) == vocab)
        #expect(abs(Double(matching(half.step)) / Double(vocab / 2) - 1) < 0.1, "\(matching(half.step)) exact")
        #expect(half.step.withUnsafeBufferPointer(argmax) == dense.step.withUnsafeBufferPointer(argmax))
    }

    /// A sidecar from before candidate heads still runs the feed-forward rules, and asking it
    /// for a candidate head says to recalibrate; ranks beyond the calibrated one are refused.
    @Test func aSidecarWithoutAHeadPreviewAsksForRecalibration() throws {
        let model = try catalogModel("smollm2-135m"), pool = ThreadPool(threadCount: 1), d = model.config.embeddingSize
        let old = try selectEverythingSidecar(model, sha256: "test")
        _ = try ContextualSparsity(model: model.transformer, sidecar: old, rule: .teal, sparsity: 0.5, pool: pool)
        #expect { try ContextualSparsity(model: model.transformer, sidecar: old, rule: .teal, sparsity: 0.5, headCandidates: 1024, pool: pool) }
            throws: { "\($0)".contains("recalibrate") }
        let zeros = [Float](repeating: 0, count: 32 * d)
        let current = try selectEverythingSidecar(model, sha256: "test", head: (zeros, zeros, 32))
        _ = try ContextualSparsity(model: model.transformer, sidecar: current, rule: .teal, sparsity: 0, headCandidates: 1024, headRank: 32, pool: pool)
        for (candidates, rank) in [(1024, 64), (1024, 48), (-1, 32), (model.transformer.vocabularySize + 1, 32)] {
            #expect(throws: SparsityError.self, "\(candidates) candidates at rank \(rank)") {
                try ContextualSparsity(model: model.transformer, sidecar: current, rule: .teal, sparsity: 0, headCandidates: candidates,
                                       headRank: rank, pool: pool)
            }
        }
    }

    /// Inputs whose second moments are far from isotropic (a few dimensions 30 times larger,
    /// all of them correlated) through a random head. At full rank the preview is the head
    /// itself; at rank 32 the data-aware preview keeps the fraction of E‖W h‖² it reports,
    /// and loses far less than the head's own dominant directions (Σ = I) do; the first 32 rows
    /// of a rank-64 preview are as good as a rank-32 one (rows go by captured energy).
    @Test func dataAwarePreviewBeatsTheHeadsOwnDirections() throws {
        var rng = SplitMix64(seed: 17)
        let vocab = 512, d = 128, samples = 2000, pool = ThreadPool(threadCount: 2)
        let weights = (0..<vocab * d).map { _ in Float.random(in: -1...1, using: &rng) }
        let bytes = SparsityCalibration.quantizedRows(weights, rows: vocab, cols: d)
        let mixing = (0..<d * d).map { _ in Float.random(in: -0.2...0.2, using: &rng) }
        let inputs: [[Double]] = (0..<samples).map { _ in
            let z: [Double] = (0..<d).map { k in Double(Float.random(in: -1...1, using: &rng)) * (k % 16 == 0 ? 30 : 1) }
            return (0..<d).map { (i: Int) -> Double in
                var mixed = z[i]
                for k in 0..<d { mixed += Double(mixing[i * d + k]) * z[k] }
                return mixed
            }
        }
        var moments = [Double](repeating: 0, count: d * d), identity = moments
        for x in inputs { for i in 0..<d { for j in 0..<d { moments[i * d + j] += x[i] * x[j] / Double(samples) } } }
        for i in 0..<d { identity[i * d + i] = 1 }
        try bytes.withUnsafeBytes { raw in
            let head = try WeightMatrix(type: .q8_0, rows: vocab, cols: d, data: raw.baseAddress!)
            var exact = [Float](repeating: 0, count: vocab * d)
            exact.withUnsafeMutableBufferPointer { e in for r in 0..<vocab { head.dequantizeRow(r, into: e.baseAddress! + r * d) } }
            /// Mean ‖(W − A) h‖² / mean ‖W h‖² over the inputs, for the first `rank` rows of the factors.
            func lost(_ f: (project: [Float], expand: [Float], captured: [Double]), rank: Int) -> Double {
                var error = 0.0, total = 0.0
                for x in inputs {
                    let p = (0..<rank).map { i in (0..<d).reduce(0.0) { $0 + Double(f.project[i * d + $1]) * x[$1] } }
                    let back = (0..<d).map { k in (0..<rank).reduce(0.0) { $0 + Double(f.expand[$1 * d + k]) * p[$1] } }
                    for r in 0..<vocab {
                        var w = 0.0, a = 0.0
                        for k in 0..<d { w += Double(exact[r * d + k]) * x[k]; a += Double(exact[r * d + k]) * back[k] }
                        error += (w - a) * (w - a)
                        total += w * w
                    }
                }
                return error / total
            }
            let full = HeadPreview.factors(output: head, secondMoments: moments, rank: d, pool: pool)
            #expect(lost(full, rank: d) < 1e-6, "full rank: \(lost(full, rank: d))")
            let aware = HeadPreview.factors(output: head, secondMoments: moments, rank: 64, pool: pool)
            let own = HeadPreview.factors(output: head, secondMoments: identity, rank: 32, pool: pool)
            let awareLost = lost(aware, rank: 32), ownLost = lost(own, rank: 32)
            #expect(abs(awareLost - (1 - aware.captured[0])) < 0.01, "lost \(awareLost), reported kept \(aware.captured[0])")
            #expect(awareLost < ownLost / 2, "data-aware \(awareLost), head's own directions \(ownLost)")
            let direct = HeadPreview.factors(output: head, secondMoments: moments, rank: 32, pool: pool)
            #expect(awareLost <= 1.01 * lost(direct, rank: 32), "prefix \(awareLost), rank 32 \(lost(direct, rank: 32))")
        }
    }

    @Test func aSidecarForAnotherModelIsRefused() throws {
        let model = try catalogModel("smollm2-135m")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-test-\(UUID()).sparsity").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try selectEverythingSidecar(model, sha256: String(repeating: "0", count: 64)).write(to: path)
        let sha256 = try ModelStore().sha256(ofModelAt: model.file.path)
        #expect(throws: SparsityError.self) { try SparsitySidecar(path: path, modelSHA256: sha256, config: model.config) }
        do {
            _ = try SparsitySidecar(path: path, modelSHA256: sha256, config: model.config)
        } catch {
            #expect("\(error)".contains("calibrated for another model"))
        }
        // Its own model's sha256 loads; a truncated copy does not.
        _ = try SparsitySidecar(path: path, modelSHA256: String(repeating: "0", count: 64), config: model.config)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: path))
        #expect(throws: SparsityError.self) { try SparsitySidecar(path: path, modelSHA256: String(repeating: "0", count: 64), config: model.config) }
        // Nor one whose header lacks a rule's errors (budgets could not be allocated) or whose
        // levels do not rise from 0.
        let whole = try selectEverythingSidecar(model, sha256: String(repeating: "0", count: 64))
        for edit: (inout SparsitySidecar.Header) -> Void in [{ $0.layers[3].errors["teal"] = nil }, { $0.levels = [0.5, 0] }] {
            var header = whole.header
            edit(&header)
            try whole.write(to: path)
            var file = try Data(contentsOf: URL(fileURLWithPath: path))
            let length = file[8..<12].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let json = try JSONEncoder().encode(header)
            file.replaceSubrange(8..<(12 + length), with: withUnsafeBytes(of: UInt32(json.count).littleEndian) { Data($0) } + json)
            try file.write(to: URL(fileURLWithPath: path))
            #expect(throws: SparsityError.self) { try SparsitySidecar(path: path, modelSHA256: String(repeating: "0", count: 64), config: model.config) }
        }
    }

    /// Up's rows are skipped at a calibrated CATS threshold, so a level the sidecar lacks is
    /// refused, as is asking a rule other than TEAL for it.
    @Test func upSparsityNeedsACalibratedLevelAndTheTealRule() throws {
        let model = try catalogModel("smollm2-135m"), pool = ThreadPool(threadCount: 2)
        let sidecar = try selectEverythingSidecar(model, sha256: "test")
        func refusal(_ rule: SparsityRule, up: Double) -> String {
            do {
                _ = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: rule, sparsity: 0.5, upSparsity: up, pool: pool)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal(.teal, up: 0.3).contains("not a calibrated level (0.0, 0.5)"), "\(refusal(.teal, up: 0.3))")
        #expect(refusal(.cats, up: 0.5).contains("teal rule only"), "\(refusal(.cats, up: 0.5))")
        #expect(refusal(.teal, up: 0.5) == "accepted")
    }

    /// Calibration on real text writes a sidecar that reads back and drives every rule: the
    /// mean sparsity asked for, finite perplexity, and the oracle-like TEAL rule at 30% within
    /// 10% of dense perplexity on text after the calibrated part. Errors are relative to the
    /// residual stream, so the first layer, whose block adds to the bare embedding, is the
    /// costliest to sparsify (relative to its own output it was the cheapest, and went first).
    @Test func calibrationOnRealTextGivesAWorkingSidecar() throws {
        let model = try catalogModel("smollm2-135m"), pool = ThreadPool(threadCount: 2)
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/text")
        let text = try String(contentsOf: fixtures.appendingPathComponent("pride_and_prejudice_excerpt.txt"), encoding: .utf8)
        var options = SparsityCalibration.Options()
        options.tokens = 1024
        options.window = 256
        options.heldOutRows = 64
        options.epochs = 2
        options.rank = 32
        options.subspaceRank = 32
        options.headRank = 128
        let sha256 = try ModelStore().sha256(ofModelAt: model.file.path)
        let made = try SparsityCalibration.run(model: model, text: text, textName: "excerpt", modelSHA256: sha256, options: options, pool: pool) { _ in }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparrow-test-\(UUID()).sparsity").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try made.write(to: path)
        let sidecar = try SparsitySidecar(path: path, modelSHA256: sha256, config: model.config)
        #expect(sidecar.header.layers.count == model.config.layerCount)
        #expect(sidecar.header.layers.allSatisfy { $0.errors.count == SparsityRule.allCases.count })
        for rule in [SparsityRule.cats, .teal] {
            let halfSparse = sidecar.header.layers.map { $0.errors[rule.rawValue]![5] }
            #expect(halfSparse[0] > halfSparse.dropFirst().max()!, "\(rule): \(halfSparse)")
        }

        let all = model.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        try #require(all.count >= 1024 + 129, "the excerpt must hold text beyond the calibration's")
        let heldOut = Array(all.suffix(129))
        let evaluation = try PerplexityEvaluation(contextSize: 129, stepwise: true, bos: nil)
        let session = Session(model: model.transformer, contextSize: 129, pool: pool)
        let dense = try evaluation.run(heldOut, in: session).perplexity
        for rule in SparsityRule.allCases {
            let method = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: rule, sparsity: rule == .teal ? 0.3 : 0.5, pool: pool)
            #expect(abs(method.meanSparsity - (rule == .teal ? 0.3 : 0.5)) < 0.05, "\(rule)")
            session.decodeFeedForward = method
            let sparse = try evaluation.run(heldOut, in: session).perplexity
            #expect(sparse.isFinite && sparse > 1, "\(rule): \(sparse)")
            if rule == .teal { #expect(sparse / dense < 1.1, "teal at 0.3: \(sparse) vs dense \(dense)") }
        }
        // The head's preview: more rank keeps more of the logits' energy, and a step reading a
        // rank-128 preview and 4096 of the 49152 rows stays close to dense.
        let head = try #require(sidecar.header.head)
        #expect(head.rank == 128 && head.capturedEnergy.count == 4, "\(head)")
        #expect(zip(head.capturedEnergy, head.capturedEnergy.dropFirst()).allSatisfy { $0 < $1 } && head.capturedEnergy.last! < 1)
        let candidates = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: .teal, sparsity: 0, headCandidates: 4096,
                                                headRank: 128, pool: pool)
        session.decodeFeedForward = candidates
        let headOnly = try evaluation.run(heldOut, in: session).perplexity
        #expect(headOnly / dense < 1.05, "candidate head: \(headOnly) vs dense \(dense)")
    }

    /// Rows confined to a 3-dimensional subspace: a rank-3 basis spans them exactly.
    @Test func principalSubspaceSpansTheRows() {
        var rng = SplitMix64(seed: 11)
        let width = 48, count = 500
        let directions = (0..<3 * width).map { _ in Float.random(in: -1...1, using: &rng) }
        let rows = (0..<count).flatMap { _ in
            let c = (0..<3).map { _ in Float.random(in: -5...5, using: &rng) }
            return (0..<width).map { k in c[0] * directions[k] + c[1] * directions[width + k] + c[2] * directions[2 * width + k] }
        }
        let basis = PrincipalSubspace.basis(of: rows, count: count, width: width, rank: 3, pool: ThreadPool(threadCount: 2))
        for r in stride(from: 0, to: count, by: 50) {
            let x = rows[(r * width)..<((r + 1) * width)].map(Double.init)
            var residual = x
            for b in 0..<3 {
                let v = basis[(b * width)..<((b + 1) * width)].map(Double.init)
                let dot = zip(x, v).reduce(0) { $0 + $1.0 * $1.1 }
                for k in 0..<width { residual[k] -= dot * v[k] }
            }
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot(), left = residual.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(left < 1e-3 * norm, "row \(r): \(left) of \(norm) outside the basis")
        }
    }

    /// Budgets go where skipping costs least, until the mean sparsity is reached.
    @Test func allocationSparsifiesTheCheapestLayersFirst() {
        let levels = [0, 0.5, 1.0], everyLevel = [1, 1, 1]
        let errors = [[0, 0.5, 0.9], [0, 0.01, 0.02], [0, 0.2, 0.3]]
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 1.0 / 3, firstUseful: everyLevel) == [0, 2, 0])
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 0.5, firstUseful: everyLevel) == [0, 2, 1])
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 0, firstUseful: everyLevel) == [0, 0, 0])
        // A layer only worth running at its top level jumps there, compared per unit of
        // sparsity; one never worth running stays dense.
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 1.0 / 3, firstUseful: [1, 1, 2]) == [0, 2, 0])
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 2.0 / 3, firstUseful: [1, 1, 2]) == [0, 2, 2])
        #expect(ContextualSparsity.allocate(errors: errors, levels: levels, sparsity: 1, firstUseful: [3, 1, 1]) == [0, 2, 2])
    }

    /// The bytes model behind that choice, on Qwen2.5-Coder-0.5B (down mixes Q4_K and Q6_K;
    /// its int8 column copy reads 910 bytes per neuron, scales included): TEAL pays off from
    /// 45% of a Q4_K down skipped and from 19% of a Q6_K one. With 0.3 cheap and 0.6 dear in every layer, a mean
    /// of 0.3 would put every layer at 0.3; instead the Q6_K layers go there and Q4_K layers,
    /// which would read more than dense at 0.3, to 0.6 or nowhere. Every level of CATS above
    /// 0.3 skips bytes.
    @Test func sparseLayersReadFewerBytesThanDenseOnes() throws {
        let model = try catalogModel("qwen2.5-coder-0.5b")
        let sidecar = try selectEverythingSidecar(model, sha256: "test", levels: [0, 0.3, 0.6], errors: [0, 0.01, 0.5])
        let teal = try ContextualSparsity(model: model.transformer, sidecar: sidecar, rule: .teal, sparsity: 0.3, pool: ThreadPool(threadCount: 1))
        for (l, layer) in model.transformer.layers.enumerated() {
            let bytes = FeedForwardBytes(model: model.transformer, sidecar: sidecar, layer: l)
            let breakEven = 1 - bytes.down / bytes.downColumns
            #expect(abs(breakEven - (layer.down.type == .q4_K ? 0.45 : 0.19)) < 0.01, "layer \(l): \(breakEven)")
            #expect((layer.down.type == .q4_K ? [0, 0.6] : [0.3]).contains(teal.layerSparsity[l]), "layer \(l): \(teal.layerSparsity[l])")
            #expect(bytes.sparse(.cats, kept: 0.7) < bytes.dense)
        }
        #expect(abs(teal.meanSparsity - 0.3) < 1e-9)
        #expect(teal.weightBytesPerToken < model.transformer.weightBytesPerToken)
    }
}
