/// Mean, standard deviation and median of repeated measurements.
public struct SampleStatistics: Sendable, Equatable {
    public let count: Int
    public let mean: Double
    /// The sample standard deviation (n − 1 in the denominator, as llama-bench); 0 for fewer
    /// than two samples.
    public let standardDeviation: Double
    /// The middle sample, or the mean of the two middle ones for an even count.
    public let median: Double

    /// All zero for no samples, as llama-bench reports an empty test.
    public init(_ samples: [Double]) {
        count = samples.count
        guard !samples.isEmpty else {
            mean = 0
            standardDeviation = 0
            median = 0
            return
        }
        let mean = samples.reduce(0, +) / Double(samples.count)
        self.mean = mean
        // Two passes: the one-pass sum-of-squares formula cancels badly for large, close samples.
        let squares = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        standardDeviation = samples.count > 1 ? (squares / Double(samples.count - 1)).squareRoot() : 0
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
