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
        return dominantEigenvectors(of: covariance, width: d, rank: r, iterations: iterations, pool: pool).vectors
    }

    /// The `rank` leading eigenpairs of a symmetric positive semi-definite width x width
    /// matrix: orthonormal eigenvectors (rank x width, row-major) by descending eigenvalue. The
    /// iterated subspace is rotated onto the matrix's own axes within it (Rayleigh-Ritz), so
    /// that every prefix of the rows is the best subspace of its size, not just the whole.
    static func dominantEigenvectors(of matrix: [Float], width d: Int, rank r: Int, iterations: Int = 40,
                                     pool: ThreadPool) -> (vectors: [Float], values: [Double]) {
        var random = Xoshiro256(seed: 0x5EED)
        var q = (0..<r * d).map { _ in Float.random(in: -1...1, using: &random) }
        orthonormalise(&q, rows: r, width: d)
        var next = [Float](repeating: 0, count: r * d)
        for _ in 0..<iterations {
            FloatGEMM.multiply(m: r, n: d, k: d, a: q, b: matrix, into: &next, pool: pool)
            swap(&q, &next)
            orthonormalise(&q, rows: r, width: d)
        }
        // The matrix within the subspace, Q M Qᵀ (r x r), and its eigenvectors rotate Q.
        FloatGEMM.multiply(m: r, n: d, k: d, a: q, b: matrix, into: &next, pool: pool)
        var projected = [Float](repeating: 0, count: r * r)
        FloatGEMM.multiply(m: r, n: r, k: d, a: next, b: q, transposeB: true, into: &projected, pool: pool)
        let (rotation, values) = symmetricEigen(projected.map(Double.init), size: r)
        var vectors = [Float](repeating: 0, count: r * d)
        FloatGEMM.multiply(m: r, n: d, k: r, a: rotation.map(Float.init), b: q, into: &vectors, pool: pool)
        return (vectors, values)
    }

    /// Eigenvectors (rows of the first result, size x size) and eigenvalues, by descending
    /// eigenvalue, of a small symmetric matrix: cyclic Jacobi rotations in Double.
    static func symmetricEigen(_ matrix: [Double], size n: Int) -> (vectors: [Double], values: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<50 {
            var offDiagonal = 0.0, diagonal = 0.0
            for i in 0..<n {
                diagonal += a[i * n + i] * a[i * n + i]
                for j in (i + 1)..<n { offDiagonal += a[i * n + j] * a[i * n + j] }
            }
            if offDiagonal <= 1e-24 * diagonal { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p * n + q] != 0 {
                    // The rotation that zeroes a[p][q]: tan of its angle is the smaller root.
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let kp = a[k * n + p], kq = a[k * n + q]
                        a[k * n + p] = c * kp - s * kq
                        a[k * n + q] = s * kp + c * kq
                    }
                    for k in 0..<n {
                        let pk = a[p * n + k], qk = a[q * n + k]
                        a[p * n + k] = c * pk - s * qk
                        a[q * n + k] = s * pk + c * qk
                    }
                    // Rows of v are the eigenvectors: v ← J v on rows p and q.
                    for k in 0..<n {
                        let pk = v[p * n + k], qk = v[q * n + k]
                        v[p * n + k] = c * pk - s * qk
                        v[q * n + k] = s * pk + c * qk
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        return (order.flatMap { i in v[(i * n)..<(i * n + n)] }, order.map { a[$0 * n + $0] })
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
