import Prometheus
import SparrowEngine

/// The server's Prometheus metrics (GET /metrics).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let promptTokens, generatedTokens, cancelled: Counter
    private let promptSpeed, generationSpeed, queueDepth, busySlots, slots: Gauge
    private let timeToFirstToken, requestSeconds: ValueHistogram

    init() {
        promptTokens = registry.makeCounter(name: "sparrow_prompt_tokens_total", help: "Prompt tokens of generations that started, cancelled ones included.")
        generatedTokens = registry.makeCounter(name: "sparrow_generated_tokens_total", help: "Tokens generated, cancelled generations included.")
        cancelled = registry.makeCounter(name: "sparrow_generations_cancelled_total", help: "Generations stopped because their client went away.")
        promptSpeed = registry.makeGauge(name: "sparrow_prompt_tokens_per_second", help: "Prompt processing speed of the latest generation.")
        generationSpeed = registry.makeGauge(name: "sparrow_generation_tokens_per_second", help: "Decoding speed of the latest generation.")
        queueDepth = registry.makeGauge(name: "sparrow_queue_depth", help: "Requests waiting for a slot.")
        busySlots = registry.makeGauge(name: "sparrow_slots_busy", help: "Slots running a generation.")
        slots = registry.makeGauge(name: "sparrow_slots", help: "Sequences the server runs at once.")
        let latencyBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
        timeToFirstToken = registry.makeValueHistogram(name: "sparrow_time_to_first_token_seconds", buckets: latencyBuckets,
                                                       help: "From a generation's start in its slot to its first token.")
        requestSeconds = registry.makeValueHistogram(name: "sparrow_request_duration_seconds", buckets: latencyBuckets,
                                                     help: "Generation requests from arrival to their last byte.")
    }

    /// Counts a finished request by endpoint and HTTP status.
    func countRequest(endpoint: String, status: Int) {
        registry.makeCounter(name: "sparrow_requests_total", labels: [("endpoint", endpoint), ("status", String(status))],
                             help: "HTTP requests by endpoint and status.").increment()
    }

    /// A generation that ended, or was `cancelled` with what it had generated.
    func recordGeneration(_ result: GenerationResult, cancelled wasCancelled: Bool) {
        let t = result.timings
        promptTokens.increment(by: Int64(result.promptTokens.count))
        generatedTokens.increment(by: Int64(result.generatedTokens.count))
        // A cancelled generation's speeds cover a part of its work.
        if wasCancelled { return cancelled.increment() }
        promptSpeed.set(to: t.promptTokensPerSecond)
        if t.generatedTokens > 0 { generationSpeed.set(to: t.generationTokensPerSecond) }
        timeToFirstToken.record(t.promptSeconds)
    }

    func recordRequest(seconds: Double) { requestSeconds.record(seconds) }

    /// The exposition text, with the scheduler's current load.
    func exposition(load: (busy: Int, slots: Int, queued: Int)) -> String {
        queueDepth.set(to: Double(load.queued))
        busySlots.set(to: Double(load.busy))
        slots.set(to: Double(load.slots))
        return registry.emitToString()
    }
}
