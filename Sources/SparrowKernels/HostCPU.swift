import Foundation

/// What the kernels know about the processor they run on, for reports.
public enum HostCPU {
    /// The processor's name as /proc/cpuinfo gives it ("model name"), or "unknown CPU".
    public static let name: String = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":")
        else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }()

    /// The instruction-set extensions the kernels choose at run time and use on this CPU, named
    /// as llama.cpp's system info names them.
    public static var kernelFeatures: [String] { DotInstructions.best == .portable ? [] : [DotInstructions.best.rawValue] }
}
