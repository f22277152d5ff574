import SparrowEngine
import SparrowKernels
import SparrowTestSupport
import Testing

/// Several sessions' decode steps in one pass give each exactly the logits and cache of a step
/// of its own, on each architecture (biases, sliding windows, GeGLU).
@Suite struct BatchedDecodeTests {
    @Test(arguments: ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"])
    func batchedStepsEqualSeparateSteps(_ name: String) throws {
        let model = try catalogModel(name), pool = ThreadPool(threadCount: 2)
        // Prompts of different lengths, so the batch's rows sit at different positions.
        let prompts = ["It is a truth universally acknowledged", "Emma Woodhouse, handsome, clever, and rich,", "The"].map(model.promptTokens)
        let batched = prompts.map { _ in Session(model: model.transformer, contextSize: 128, pool: pool) }
        let separate = prompts.map { _ in Session(model: model.transformer, contextSize: 128, pool: pool) }
        var next: [Int] = []
        for (i, prompt) in prompts.enumerated() {
            try batched[i].evaluate(prompt)
            next.append(argmax(try separate[i].evaluate(prompt).last))
        }
        for _ in 0..<4 {
            let rows = try Session.decode(next, in: batched)
            for i in prompts.indices {
                let expected = try separate[i].evaluate([next[i]]).last
                #expect(Array(rows[i]) == Array(expected), "session \(i)")
                next[i] = argmax(expected)
            }
        }
        #expect(batched.map(\.tokens) == separate.map(\.tokens))
    }

    private func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        row.indices.max { row[$0] < row[$1] }!
    }
}
