import Foundation

/// Resident memory of this process, from /proc (Linux).
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakResidentBytes: Int { statusField("VmHWM:") }
    /// Starts the peak over from the current resident size (Linux; a no-op elsewhere), so that
    /// one stage of a longer run can be measured alone. The heap is trimmed first: glibc keeps
    /// freed memory of earlier stages resident (its mmap threshold grows as large blocks are
    /// freed, so later ones come from the heap), which would count toward every later peak.
    public static func resetPeak() {
        trimHeap()
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// glibc's malloc_trim, looked up at run time: Swift's Glibc module leaves out malloc.h.
    private static func trimHeap() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }

    /// Current resident set size in bytes (VmRSS).
    public static var residentBytes: Int { statusField("VmRSS:") }

    private static func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) })
        else { return 0 }
        let kilobytes = line.dropFirst(name.count).split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 0
        return kilobytes * 1024
    }
}
