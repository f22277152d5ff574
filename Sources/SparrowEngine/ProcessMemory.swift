import Foundation

/// Resident memory of this process, from /proc (Linux).
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), or 0 where /proc is unavailable.
    public static var peakResidentBytes: Int { statusField("VmHWM:") }
    /// Starts the peak over from the current resident size (Linux; a no-op elsewhere), so that
    /// one stage of a longer run can be measured alone.
    public static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
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
