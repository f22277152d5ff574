import Foundation
import SparrowEngine
import SparrowKernels

/// What one queued generation asks for.
public struct InferenceRequest: Sendable {
    public var prompt: [Int]
    /// Everything but a draft model's speculation, which runs on the slot's own draft session.
    public var options: GenerationOptions
    /// Draft with the server's draft model: the most tokens per pass, the fewest kept, and the
    /// draft's confidence floor.
    public var draftModel: (maxDraft: Int, minDraft: Int, minimumConfidence: Float)?
    /// Replaces the dense feed-forward blocks of decode steps (nil: dense).
    public var decodeFeedForward: (any DecodeFeedForward & Sendable)?

    public init(prompt: [Int], options: GenerationOptions) {
        self.prompt = prompt
        self.options = options
    }
}

/// What a job reports, in order: progress rounds, then `finished` or `failed`.
public enum InferenceEvent: Sendable {
    /// Text the round finished, and the tokens it generated with their log-probabilities
    /// (when the request asked for them).
    case progress(text: String, tokens: [GeneratedToken])
    case finished(GenerationResult)
    case failed(String)
}

/// A generated token, with log-probabilities when requested.
public struct GeneratedToken: Sendable {
    public let token: Int
    public let logprob: Float?
    public let top: [(token: Int, logProbability: Float)]
}

/// The scheduler's queue is full; the client should retry later.
public struct QueueFullError: Error, CustomStringConvertible {
    public var description: String { "the server is busy: every slot is in use and the queue is full; retry later" }
}

/// A queued or running generation. Its events end with `finished` or `failed`; `cancel` (or
/// dropping the event stream) frees its slot at the scheduler's next round.
public final class InferenceJob: Sendable {
    public let events: AsyncStream<InferenceEvent>
    fileprivate let request: InferenceRequest
    fileprivate let continuation: AsyncStream<InferenceEvent>.Continuation
    private weak let scheduler: InferenceScheduler?

    fileprivate init(request: InferenceRequest, scheduler: InferenceScheduler) {
        self.request = request
        self.scheduler = scheduler
        (events, continuation) = AsyncStream.makeStream()
    }

    public func cancel() { scheduler?.cancel(self) }
}

/// Runs generations for many clients on one model: `slots` sequences in flight, each with its
/// own key/value cache, advanced in rounds on one engine thread: each busy slot runs a prompt
/// chunk, a verification or a decode step, and the decode steps of a round run as one batch
/// (continuous batching), so each weight is read once for all of them. Jobs beyond the slots
/// wait in a bounded queue; beyond that, `submit` refuses.
public final class InferenceScheduler: @unchecked Sendable {
    /// One sequence's cache, with the job it runs.
    private final class Slot {
        let session: Session
        /// The draft model on its own cache, copied into each job that drafts with it.
        let draft: DraftModel?
        var job: InferenceJob?
        var generation: Generation?
        /// How many of the result's tokens have been reported.
        var reported = 0

        init(session: Session, draft: DraftModel?) {
            self.session = session
            self.draft = draft
        }
    }

    public let model: LanguageModel
    public let queueCapacity: Int
    private let slots: [Slot]
    private var waiting: [InferenceJob] = []
    /// Jobs whose client went away; their slots are freed at the next round.
    private var cancelled: Set<ObjectIdentifier> = []
    private var stopping = false
    private let condition = NSCondition()
    private let onFinish: @Sendable (GenerationResult, _ cancelled: Bool) -> Void

    /// - Parameter onFinish: called on the engine thread with each generation that ran to its
    ///   end or was cancelled in its slot (with what it had generated).
    public init(model: LanguageModel, draftModel: LanguageModel? = nil, draftHeadCandidates: Int = SketchedHead.defaultCandidates,
                contextSize: Int, slots: Int, queueCapacity: Int,
                pool: ThreadPool, onFinish: @escaping @Sendable (GenerationResult, _ cancelled: Bool) -> Void = { _, _ in }) throws {
        self.model = model
        self.queueCapacity = queueCapacity
        self.onFinish = onFinish
        self.slots = try (0..<slots).map { _ in
            Slot(session: Session(model: model.transformer, contextSize: contextSize, pool: pool),
                 draft: try draftModel.map {
                     try DraftModel(model: $0, target: model, contextSize: contextSize, pool: pool, headCandidates: draftHeadCandidates)
                 })
        }
        // The thread keeps the scheduler alive until `shutdown`.
        let thread = Thread { self.run() }
        thread.name = "sparrow-engine"
        thread.start()
    }

    public var hasDraftModel: Bool { slots.first?.draft != nil }

    /// Queues a generation.
    /// - Throws: `QueueFullError` when every slot is busy and the queue holds `queueCapacity` jobs.
    public func submit(_ request: InferenceRequest) throws -> InferenceJob {
        let job = InferenceJob(request: request, scheduler: self)
        condition.lock()
        defer { condition.unlock() }
        let idle = slots.contains { $0.job == nil }
        guard idle || waiting.count < queueCapacity else { throw QueueFullError() }
        waiting.append(job)
        // Only a consumer that stopped listening cancels: the scheduler's own `finish` runs
        // under its lock.
        job.continuation.onTermination = { [weak job] termination in
            if case .cancelled = termination { job?.cancel() }
        }
        condition.signal()
        return job
    }

    /// Busy slots, all slots, and jobs waiting for one.
    public var load: (busy: Int, slots: Int, queued: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (slots.count { $0.job != nil }, slots.count, waiting.count)
    }

    /// Stops the engine thread after its current round; queued and running jobs fail. The
    /// scheduler lives until this is called.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    fileprivate func cancel(_ job: InferenceJob) {
        condition.lock()
        defer { condition.unlock() }
        if let index = waiting.firstIndex(where: { $0 === job }) {
            waiting.remove(at: index)
            job.continuation.finish()
        } else if slots.contains(where: { $0.job === job }) {
            cancelled.insert(ObjectIdentifier(job))
        }
    }

    private func run() {
        while let active = nextRound() {
            var steps: [(slot: Slot, token: Int)] = []
            for slot in active {
                guard let token = begin(slot) else { continue }
                // Contextual sparsity replaces a step's feed-forward blocks: such slots step alone.
                if slot.session.decodeFeedForward == nil { steps.append((slot, token)) } else { decode([(slot, token)]) }
            }
            decode(steps)
        }
    }

    /// Waits for work, frees cancelled slots and seats waiting jobs; the busy slots to advance,
    /// or nil when shutting down.
    private func nextRound() -> [Slot]? {
        condition.lock()
        defer { condition.unlock() }
        while !stopping && waiting.isEmpty && !slots.contains(where: { $0.job != nil }) { condition.wait() }
        for slot in slots {
            if let job = slot.job, stopping || cancelled.contains(ObjectIdentifier(job)) {
                if stopping { job.continuation.yield(.failed("the server is shutting down")) }
                if var generation = slot.generation { onFinish(generation.finish { _ in }, true) }
                release(slot)
            }
        }
        cancelled.removeAll()
        if stopping {
            for job in waiting {
                job.continuation.yield(.failed("the server is shutting down"))
                job.continuation.finish()
            }
            waiting.removeAll()
            return nil
        }
        while !waiting.isEmpty, let slot = bestSlot(for: waiting[0].request.prompt) {
            seat(waiting.removeFirst(), in: slot)
        }
        return slots.filter { $0.job != nil }
    }

    /// The idle slot whose cache shares the longest prefix with `prompt`, so a conversation's
    /// next turn reuses its earlier prefill.
    private func bestSlot(for prompt: [Int]) -> Slot? {
        slots.filter { $0.job == nil }.map { ($0, $0.session.reusablePrefix(of: prompt)) }.max { $0.1 < $1.1 }?.0
    }

    private func seat(_ job: InferenceJob, in slot: Slot) {
        slot.job = job
        slot.reported = 0
        var options = job.request.options
        if let settings = job.request.draftModel, var draft = slot.draft {
            draft.minimumConfidence = settings.minimumConfidence
            options.speculation = SpeculationOptions(source: draft, maxDraft: settings.maxDraft, minDraft: settings.minDraft)
        }
        slot.session.decodeFeedForward = job.request.decodeFeedForward
        do {
            slot.generation = try Generation(tokenizer: model.tokenizer, session: slot.session, prompt: job.request.prompt, options: options)
        } catch {
            fail(slot, error)
        }
    }

    /// Runs the slot's round up to a plain decode step, reporting what it produced; returns the
    /// token to decode, if any. Runs without the lock.
    private func begin(_ slot: Slot) -> Int? {
        guard let job = slot.job, var generation = slot.generation else { return nil }
        var text = ""
        do {
            let token = try generation.advanceToDecode { text += $0 }
            if generation.isRunning {
                report(text, of: generation.result, for: job, in: slot)
                slot.generation = generation
                return token
            }
            let result = generation.finish { text += $0 }
            report(text, of: result, for: job, in: slot)
            onFinish(result, false)
            // Freed as the client hears of it: its next request finds the slot idle.
            condition.lock()
            job.continuation.yield(.finished(result))
            release(slot)
            condition.unlock()
        } catch {
            condition.lock()
            fail(slot, error)
            condition.unlock()
        }
        return nil
    }

    /// Evaluates the slots' decode steps in one pass through the weights (each slot's logits
    /// are those of a step of its own), and hands each its logits.
    private func decode(_ steps: [(slot: Slot, token: Int)]) {
        guard let first = steps.first else { return }
        do {
            let rows = steps.count == 1 ? [try first.slot.session.evaluate([first.token]).last]
                : try Session.decode(steps.map(\.token), in: steps.map(\.slot.session))
            for (step, row) in zip(steps, rows) { step.slot.generation?.completeDecode(row) }
        } catch {
            condition.lock()
            for step in steps { fail(step.slot, error) }
            condition.unlock()
        }
    }

    private func report(_ text: String, of result: GenerationResult, for job: InferenceJob, in slot: Slot) {
        let tokens = (slot.reported..<result.generatedTokens.count).map { i in
            GeneratedToken(token: result.generatedTokens[i],
                           logprob: i < result.tokenLogprobs.count ? result.tokenLogprobs[i] : nil,
                           top: i < result.topLogprobs.count ? result.topLogprobs[i] : [])
        }
        slot.reported = result.generatedTokens.count
        if !text.isEmpty || !tokens.isEmpty { job.continuation.yield(.progress(text: text, tokens: tokens)) }
    }

    /// Call with the lock held.
    private func fail(_ slot: Slot, _ error: any Error) {
        slot.job?.continuation.yield(.failed(String(describing: error)))
        release(slot)
    }

    /// Call with the lock held.
    private func release(_ slot: Slot) {
        slot.job?.continuation.finish()
        slot.job = nil
        slot.generation = nil
        slot.session.decodeFeedForward = nil
    }
}
