import Synchronization
import Testing
@testable import SparrowKernels

@Suite struct ThreadPoolTests {
    @Test(arguments: [1, 2, 3, 5])
    func parallelForCoversEveryIndexOnce(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        #expect(pool.threadCount == threads)
        for count in [0, 1, 2, 3, 4, 7, 100, 1001] {
            let hits = Mutex([Int](repeating: 0, count: count))
            let calls = Atomic<Int>(0)
            pool.parallelFor(count) { range in
                calls.add(1, ordering: .relaxed)
                hits.withLock { for i in range { $0[i] += 1 } }
            }
            hits.withLock { #expect($0.allSatisfy { $0 == 1 }, "count \(count) on \(threads) threads") }
            #expect(calls.load(ordering: .relaxed) == min(count, threads))
        }
    }

    @Test func chunksAreContiguousAndNearEqual() {
        for workers in 1...6 {
            for count in 0..<40 {
                let chunks = (0..<workers).map { ThreadPool.chunk($0, of: workers, count: count) }
                #expect(chunks.first!.lowerBound == 0 && chunks.last!.upperBound == count)
                #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                #expect(chunks.map(\.count).max()! - chunks.map(\.count).min()! <= 1)
            }
        }
    }

    @Test func runGivesEveryWorkerItsIndexAcrossManyRegions() {
        let pool = ThreadPool(threadCount: 3)
        for _ in 0..<200 {
            let seen = Mutex([Int]())
            pool.run { worker, workers in
                #expect(workers == 3)
                seen.withLock { $0.append(worker) }
            }
            seen.withLock { #expect($0.sorted() == [0, 1, 2]) }
        }
    }

    @Test func wakesWorkersThatWentToSleep() async throws {
        let pool = ThreadPool(threadCount: 2)
        try await Task.sleep(for: .milliseconds(50))  // past the spin window
        let total = Atomic<Int>(0)
        pool.parallelFor(10) { range in total.add(range.count, ordering: .relaxed) }
        #expect(total.load(ordering: .relaxed) == 10)
    }
}
