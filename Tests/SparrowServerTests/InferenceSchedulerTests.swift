import Foundation
import SparrowEngine
import SparrowServer
import Testing

@Suite struct InferenceSchedulerTests {
    /// A job's `finished` arrives only once its slot is free again, so a client that submits
    /// its next request on hearing it never finds a one-slot, no-queue scheduler busy. The
    /// slow completion callback (metrics) would leave the slot busy for its duration if the
    /// slot were freed after the client heard.
    @Test func finishedJobHasFreedItsSlot() async throws {
        let model = try Served.model.get()
        let scheduler = try InferenceScheduler(model: model, contextSize: 128, slots: 1, queueCapacity: 0, pool: Served.pool,
                                               onFinish: { _, _ in Thread.sleep(forTimeInterval: 0.2) })
        defer { scheduler.shutdown() }
        var options = GenerationOptions()
        options.maxTokens = 2
        let request = InferenceRequest(prompt: model.promptTokens("Count: one, two,"), options: options)
        for _ in 0..<3 {
            let job = try scheduler.submit(request)
            var finished = false
            for await event in job.events {
                if case .finished = event { finished = true; break }
            }
            #expect(finished)
            #expect(scheduler.load.busy == 0)
        }
    }
}
