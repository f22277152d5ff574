import SparrowKernels

/// The top principal directions of a set of rows (second moments, not centred: the rows are
/// projected as they are), by subspace iteration on XᵀX. Feed-forward inputs of these models
/// concentrate in a small subspace, so the gate and up projections restricted to it rank
/// neurons nearly as the full projections do, at a fraction of their bytes.
enum PrincipalSubspace {
    /// `rank` orthonormal rows (rank x width, row-major) spanning the rows' dominant subspace.
    static func basis(of rows: UnsafePointer<Float>, count: Int, width d: Int, rank r: Int, iterations: Int = 40,
                      pool: ThreadPool) -> [Float] {
        var covariance = [Float](repeating: 0, count: d * d)
        FloatGEMM.multiply(m: d, n: d, k: count, a: rows, transposeA: true, b: rows, into: &covariance, pool: pool)
        var random = Xoshiro256(seed: 0x5EED)
        var q = (0..<r * d).map { _ in Float.random(in: -1...1, using: &random) }
        orthonormalise(&q, rows: r, width: d)
        var next = [Float](repeating: 0, count: r * d)
        for _ in 0..<iterations {
            FloatGEMM.multiply(m: r, n: d, k: d, a: q, b: covariance, into: &next, pool: pool)
            swap(&q, &next)
            orthonormalise(&q, rows: r, width: d)
        }
        return q
    }

    /// Modified Gram-Schmidt over the rows, in Double.
    private static func orthonormalise(_ q: inout [Float], rows r: Int, width d: Int) {
        for i in 0..<r {
            for j in 0..<i {
                var dot = 0.0
                for k in 0..<d { dot += Double(q[i * d + k]) * Double(q[j * d + k]) }
                for k in 0..<d { q[i * d + k] -= Float(dot) * q[j * d + k] }
            }
            var norm = 0.0
            for k in 0..<d { norm += Double(q[i * d + k]) * Double(q[i * d + k]) }
            let scale = norm > 0 ? Float(1 / norm.squareRoot()) : 0
            for k in 0..<d { q[i * d + k] *= scale }
        }
    }
}
