import Foundation
import Synchronization

/// Main-memory read bandwidth, measured the way a decode step reads its weights: every worker
/// of a pool streams its own contiguous slice of a buffer far larger than the last-level cache.
public enum MemoryBandwidth {
    /// The best bytes per second over `passes` full reads of a fresh `bytes`-byte buffer.
    ///
    /// The buffer is written first: untouched anonymous pages all map the kernel's shared zero
    /// page, which would be read from cache. It is freed before returning. The result is the
    /// machine's state at that moment (on this VM, 2 threads read about 45 or 77 GB/s from run
    /// to run), so measure it next to the speeds it explains.
    public static func measureRead(pool: ThreadPool, bytes: Int = 256 << 20, passes: Int = 5) throws -> Double {
        guard bytes >= 1 << 20 else { throw KernelError("a bandwidth buffer needs at least 1 MiB, got \(bytes) bytes") }
        guard passes >= 1 else { throw KernelError("a bandwidth measurement needs at least one pass, got \(passes)") }
        let vectorCount = bytes / vectorBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: vectorCount * vectorBytes, alignment: vectorBytes)
        defer { buffer.deallocate() }
        pool.parallelFor(vectorCount) { vectors in
            (buffer + vectors.lowerBound * vectorBytes).initializeMemory(as: UInt8.self, repeating: 1, count: vectors.count * vectorBytes)
        }

        // Atomic adds of each worker's sum keep the compiler from dropping the reads.
        let checksum = Atomic<UInt64>(0)
        var best = UInt64.max
        for _ in 0..<passes {
            let start = DispatchTime.now().uptimeNanoseconds
            pool.parallelFor(vectorCount) { vectors in
                checksum.wrappingAdd(sum(UnsafeRawPointer(buffer), vectors), ordering: .relaxed)
            }
            best = min(best, max(1, DispatchTime.now().uptimeNanoseconds - start))
        }
        return Double(vectorCount * vectorBytes) / (Double(best) / 1e9)
    }

    private typealias Vector = SIMD8<UInt64>
    private static let vectorBytes = MemoryLayout<Vector>.stride

    /// Wrapping sum of the vectors in `range`, with four independent accumulators so the adds
    /// never limit the load rate.
    private static func sum(_ base: UnsafeRawPointer, _ range: Range<Int>) -> UInt64 {
        var a = Vector(), b = Vector(), c = Vector(), d = Vector()
        var i = range.lowerBound
        while i + 4 <= range.upperBound {
            let p = base + i * vectorBytes
            a &+= p.load(as: Vector.self)
            b &+= p.load(fromByteOffset: vectorBytes, as: Vector.self)
            c &+= p.load(fromByteOffset: 2 * vectorBytes, as: Vector.self)
            d &+= p.load(fromByteOffset: 3 * vectorBytes, as: Vector.self)
            i += 4
        }
        while i < range.upperBound {
            a &+= base.load(fromByteOffset: i * vectorBytes, as: Vector.self)
            i += 1
        }
        return (a &+ b &+ c &+ d).wrappedSum()
    }
}
