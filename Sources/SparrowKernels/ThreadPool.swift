import CSparrowSIMD
import Foundation
import Synchronization

/// Persistent pool of spinning worker threads (the caller participates as worker 0).
/// Built for ~200 small parallel regions per decode step: low-latency wake-up, no allocation per call.
/// Workers spin on a generation counter for a while after each region, then sleep on a
/// condition variable so an idle process does not burn CPU. Not reentrant: one `run` at a time.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared

    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        shared = Shared(workerCount: self.threadCount)
        for worker in 1..<self.threadCount {
            let shared = shared
            let thread = Thread { shared.workerLoop(worker) }
            thread.name = "sparrow-worker-\(worker)"
            thread.start()
        }
    }

    deinit { shared.stop() }

    /// Runs body(worker, workerCount) on every worker; returns when all have finished.
    public func run(_ body: (_ worker: Int, _ workerCount: Int) -> Void) {
        guard threadCount > 1 else { return body(0, 1) }
        withoutActuallyEscaping(body) { job in
            withUnsafePointer(to: job) { shared.runRegion(UnsafeRawPointer($0)) }
        }
    }

    /// Splits 0..<count into contiguous, near-equal chunks, one per worker (empty chunks are skipped).
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        guard count > 1, threadCount > 1 else { return body(0..<count) }
        run { worker, workers in
            let chunk = Self.chunk(worker, of: workers, count: count)
            if !chunk.isEmpty { body(chunk) }
        }
    }

    /// Worker `worker`'s share of 0..<count: the first count % workers chunks get one extra.
    static func chunk(_ worker: Int, of workers: Int, count: Int) -> Range<Int> {
        let base = count / workers, extra = count % workers
        let start = worker * base + min(worker, extra)
        return start..<(start + base + (worker < extra ? 1 : 0))
    }
}

private typealias Job = (Int, Int) -> Void

/// State shared with the worker threads (outlives the pool until the workers exit).
private final class Shared: @unchecked Sendable {
    let workerCount: Int
    /// Bumped to publish a region (or the stop request); workers wait for it to change.
    let generation = Atomic<Int>(0)
    /// Workers other than the caller still running the current region.
    let pending = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    /// Points at the current region's closure; published by `generation`.
    nonisolated(unsafe) var job: UnsafeRawPointer?
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// About a millisecond of polling before a worker goes to sleep.
    static let spinLimit = 20_000

    init(workerCount: Int) {
        self.workerCount = workerCount
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
    }
    // The mutex and condition are never freed: sleeping workers may still use them after the
    // pool is gone, and a pool lives as long as the process in practice.

    func runRegion(_ job: UnsafeRawPointer) {
        self.job = job
        pending.store(workerCount - 1, ordering: .relaxed)
        publish()
        Shared.invoke(job, 0, workerCount)
        var spins = 0
        while pending.load(ordering: .acquiring) != 0 {
            sparrow_cpu_relax()
            spins += 1
            // A descheduled worker (more threads than free cores) cannot finish while we spin.
            if spins % 4096 == 0 { sched_yield() }
        }
        self.job = nil
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        publish()
    }

    private func publish() {
        generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }
    }

    func workerLoop(_ worker: Int) {
        var seen = 0
        while true {
            seen = waitForChange(from: seen)
            if stopping.load(ordering: .acquiring) { return }
            Shared.invoke(job!, worker, workerCount)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func waitForChange(from seen: Int) -> Int {
        for _ in 0..<Shared.spinLimit {
            let now = generation.load(ordering: .acquiring)
            if now != seen { return now }
            sparrow_cpu_relax()
        }
        pthread_mutex_lock(mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        var now = generation.load(ordering: .sequentiallyConsistent)
        while now == seen {
            pthread_cond_wait(wake, mutex)
            now = generation.load(ordering: .sequentiallyConsistent)
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
        return now
    }

    /// Calls the published closure. Not inlined so the worker's reference to the closure is
    /// released before it reports completion (`withoutActuallyEscaping` verifies that).
    @inline(never)
    static func invoke(_ job: UnsafeRawPointer, _ worker: Int, _ workers: Int) {
        job.assumingMemoryBound(to: Job.self).pointee(worker, workers)
    }
}
