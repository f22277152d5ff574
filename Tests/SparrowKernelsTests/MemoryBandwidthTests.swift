import Testing
import SparrowKernels

@Suite struct MemoryBandwidthTests {
    @Test func measuresAPlausibleReadRate() throws {
        let bytesPerSecond = try MemoryBandwidth.measureRead(pool: ThreadPool(threadCount: 2), bytes: 64 << 20, passes: 3)
        // Between a slow disk and far beyond any DRAM: a broken timer or dropped reads land outside.
        #expect(bytesPerSecond > 1e9 && bytesPerSecond < 1e13)
    }

    @Test func refusesTinyBuffersAndNoPasses() {
        let pool = ThreadPool(threadCount: 1)
        #expect(throws: KernelError.self) { try MemoryBandwidth.measureRead(pool: pool, bytes: 1000) }
        #expect(throws: KernelError.self) { try MemoryBandwidth.measureRead(pool: pool, passes: 0) }
    }

    @Test func hostCPUHasAName() {
        #expect(!HostCPU.name.isEmpty)
        #expect(HostCPU.kernelFeatures.allSatisfy { ["AVX512_VNNI", "AVX2"].contains($0) })
    }
}
