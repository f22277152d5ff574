/// Index selections over a vector, in ascending index order (so that the rows they pick are
/// read front to back).
public enum Selection {
    /// Writes the indices of the `k` largest of `values[0..<count]` to `indices` (ties at the
    /// boundary go to the lower indices); `scratch` holds `count` floats. Linear time: a
    /// quickselect finds the k-th largest value, then one pass collects.
    public static func largest(_ k: Int, of values: UnsafePointer<Float>, count: Int,
                               scratch: UnsafeMutablePointer<Float>, into indices: UnsafeMutablePointer<Int32>) {
        precondition(k >= 0 && k <= count, "Selection.largest: k \(k) outside 0...\(count)")
        guard k > 0 else { return }
        scratch.update(from: values, count: count)
        let boundary = kthLargest(k, scratch, count: count)
        var above = 0
        for i in 0..<count where values[i] > boundary { above += 1 }
        var ties = k - above, n = 0
        for i in 0..<count {
            let v = values[i]
            if v > boundary || (v == boundary && ties > 0) {
                if v == boundary { ties -= 1 }
                indices[n] = Int32(i)
                n += 1
            }
        }
    }

    /// Writes the indices i with |values[i]| > threshold to `indices`; returns how many.
    public static func above(_ threshold: Float, magnitudesOf values: UnsafePointer<Float>, count: Int,
                             into indices: UnsafeMutablePointer<Int32>) -> Int {
        var n = 0
        for i in 0..<count where abs(values[i]) > threshold {
            indices[n] = Int32(i)
            n += 1
        }
        return n
    }

    /// The k-th largest of x[0..<count] (1-based), reordering x: Hoare-style partitioning
    /// around a median of three until the k-th place is fixed.
    private static func kthLargest(_ k: Int, _ x: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var lo = 0, hi = count - 1, target = k - 1   // the target index in descending order
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let pivot = max(min(x[lo], x[mid]), min(max(x[lo], x[mid]), x[hi]))
            var i = lo, j = hi
            while i <= j {
                while x[i] > pivot { i += 1 }
                while x[j] < pivot { j -= 1 }
                if i <= j {
                    (x[i], x[j]) = (x[j], x[i])
                    i += 1
                    j -= 1
                }
            }
            if target <= j { hi = j } else if target >= i { lo = i } else { return x[target] }
        }
        return x[target]
    }
}
