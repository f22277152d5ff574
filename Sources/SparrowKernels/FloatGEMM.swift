import CSparrowSIMD
import Foundation

/// f32 matrix multiply for the contextual-sparsity predictors (training batches, and a token
/// or a few at inference): C = op(A) · op(B), or C += op(A) · op(B), all row-major and tightly
/// packed, where op(A) is m×k (A itself m×k, or k×m when `transposeA`) and op(B) is k×n (B itself
/// k×n, or n×k when `transposeB`).
///
/// The usual blocked scheme: k is cut into blocks of `kBlock`; for each block a panel of
/// op(B) (`kBlock`×`nBlock`, L2-sized) is packed into column strips of 32, and op(A) into strips
/// of 12 rows one at a time (L1-sized); a 12×32 micro-kernel keeps its tile of C in 24
/// SIMD16<Float> accumulators while it streams the two strips. Packing makes every transpose
/// variant run the same kernel. The pool's workers each take a contiguous share of C's tiles
/// along its longer side and pack their own panels, so results do not depend on the pool's size.
/// Under 12 rows, packing all of B would cost more than the product, and B is read in place
/// instead (`Problem.fewRows`).
///
/// Measured with `FloatGEMMBenchmark` (SPARROW_BENCH=1; best of 30, idle machine) on the 2-core
/// EPYC (Zen 5, family 26: full-width 512-bit FMA), GFLOP/s with 2 threads (1 thread), m×k×n:
/// 1024×896×128 A·Bᵀ 403 (209), 1024×128×4864 A·Bᵀ 496 (251), 4864×1024×128 Aᵀ·B 478 (234),
/// 1024×4864×128 A·B 405 (205), 128×1024×896 Aᵀ·B 425 (248); one row, 1×896×128 and 1×128×4864
/// A·Bᵀ, 4 and 29 µs. Plain A packs with scalar moves, which is what keeps A·B lowest. With the
/// other core busy, 2-thread means drop to 100-140: a worker waits for the descheduled one.
public enum FloatGEMM {
    /// Micro-tile: rows of C (broadcast from A) by columns of C (two 16-lane vectors of B).
    static let tileRows = 12, tileColumns = 32
    /// k per packed block: a 12-row strip of A (12 KiB) stays in L1 across the B panel.
    static let kBlock = 256
    /// Columns per packed B panel: 256×512 floats (512 KiB) stay in L2 across A's strips.
    static let nBlock = 512

    public static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, transposeA: Bool = false,
        b: UnsafePointer<Float>, transposeB: Bool = false,
        into c: UnsafeMutablePointer<Float>, accumulate: Bool = false,
        pool: ThreadPool
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "FloatGEMM: negative size \(m)×\(k)×\(n)")
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { c.initialize(repeating: 0, count: m * n) }
            return
        }
        let lhs = Operand(base: a, rowStride: transposeA ? m : k, transposed: transposeA)
        let rhs = Operand(base: b, rowStride: transposeB ? k : n, transposed: transposeB)
        let problem = Problem(m: m, n: n, k: k, a: lhs, b: rhs, c: c, accumulate: accumulate)
        guard m >= tileRows else { return problem.fewRows(pool: pool) }
        // Split whole tiles over the workers along C's longer side.
        let byRows = m >= n
        let tiles = byRows ? (m + tileRows - 1) / tileRows : (n + tileColumns - 1) / tileColumns
        let workers = min(pool.threadCount, tiles)
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        guard workers > 1, flops > 2e6 else {
            return problem.run(rows: 0..<m, columns: 0..<n)
        }
        pool.run { worker, workerCount in
            let share = ThreadPool.chunk(worker, of: min(workerCount, workers), count: tiles)
            guard worker < workers, !share.isEmpty else { return }
            if byRows {
                problem.run(rows: share.lowerBound * tileRows..<min(m, share.upperBound * tileRows), columns: 0..<n)
            } else {
                problem.run(rows: 0..<m, columns: share.lowerBound * tileColumns..<min(n, share.upperBound * tileColumns))
            }
        }
    }

    /// A row-major matrix as its product sees it.
    struct Operand {
        let base: UnsafePointer<Float>
        let rowStride: Int
        let transposed: Bool
    }

    struct Problem {
        let m: Int, n: Int, k: Int
        let a: Operand, b: Operand
        let c: UnsafeMutablePointer<Float>
        let accumulate: Bool

        /// The block of C at rows × columns, on the calling thread.
        func run(rows: Range<Int>, columns: Range<Int>) {
            let mr = FloatGEMM.tileRows, nr = FloatGEMM.tileColumns
            let panelWidth = min(FloatGEMM.nBlock, (columns.count + nr - 1) / nr * nr)
            let depth = min(FloatGEMM.kBlock, k)
            let bPanel = UnsafeMutablePointer<Float>.allocate(capacity: depth * panelWidth)
            let aStrip = UnsafeMutablePointer<Float>.allocate(capacity: depth * mr + 4)
            let edgeTile = UnsafeMutablePointer<Float>.allocate(capacity: mr * nr)
            defer { bPanel.deallocate(); aStrip.deallocate(); edgeTile.deallocate() }

            for j0 in stride(from: columns.lowerBound, to: columns.upperBound, by: FloatGEMM.nBlock) {
                let width = min(FloatGEMM.nBlock, columns.upperBound - j0)
                for p0 in stride(from: 0, to: k, by: FloatGEMM.kBlock) {
                    let kc = min(FloatGEMM.kBlock, k - p0)
                    let add = accumulate || p0 > 0
                    packB(bPanel, p0: p0, kc: kc, j0: j0, width: width)
                    for i0 in stride(from: rows.lowerBound, to: rows.upperBound, by: mr) {
                        let height = min(mr, rows.upperBound - i0)
                        packA(aStrip, i0: i0, height: height, p0: p0, kc: kc)
                        for q in stride(from: 0, to: width, by: nr) {
                            let strip = UnsafePointer(bPanel + q * kc)
                            let out = c + i0 * n + j0 + q
                            let stripWidth = min(nr, width - q)
                            if height == mr && stripWidth == nr {
                                FloatGEMM.kernel(kc, aStrip, strip, out, n, add)
                            } else {
                                FloatGEMM.kernel(kc, aStrip, strip, edgeTile, nr, false)
                                for r in 0..<height {
                                    for j in 0..<stripWidth {
                                        out[r * n + j] = add ? out[r * n + j] + edgeTile[r * nr + j] : edgeTile[r * nr + j]
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        /// Fewer rows than a tile (decode: one token, or a few): B is read once, unpacked, by
        /// dot products with B's rows (transposed B) or by scaled row sums (plain B), C's columns
        /// shared among the workers. Each element still sums its k products in one order, though
        /// not the tiled path's, so a row's result can differ in the last bits between m < 12
        /// and a larger m.
        func fewRows(pool: ThreadPool) {
            // op(A)'s rows, contiguous.
            let rowsA = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            defer { rowsA.deallocate() }
            for i in 0..<m {
                for p in 0..<k { rowsA[i * k + p] = a.transposed ? a.base[p * a.rowStride + i] : a.base[i * a.rowStride + p] }
            }
            let x = UnsafePointer(rowsA)
            let blocks = (n + 15) / 16, flops = 2.0 * Double(m) * Double(n) * Double(k)
            let body = { (range: Range<Int>) in
                let columns = (range.lowerBound * 16)..<min(n, range.upperBound * 16)
                if b.transposed {
                    for j in columns {
                        let row = b.base + j * b.rowStride
                        for i in 0..<m {
                            let dot = FloatGEMM.dot(x + i * k, row, count: k)
                            c[i * n + j] = accumulate ? c[i * n + j] + dot : dot
                        }
                    }
                } else {
                    for i in 0..<m {
                        let out = c + i * n + columns.lowerBound
                        if !accumulate { out.initialize(repeating: 0, count: columns.count) }
                        for p in 0..<k { addProduct(b.base + p * b.rowStride + columns.lowerBound, x[i * k + p], into: out, count: columns.count) }
                    }
                }
            }
            if flops > 2e6 { pool.parallelFor(blocks, body) } else { body(0..<blocks) }
        }

        /// op(A)[i0..<i0+height, p0..<p0+kc] as dst[p * 12 + r], rows past `height` zero.
        func packA(_ dst: UnsafeMutablePointer<Float>, i0: Int, height: Int, p0: Int, kc: Int) {
            let mr = FloatGEMM.tileRows, ld = a.rowStride
            if height < mr { dst.initialize(repeating: 0, count: kc * mr) }
            if a.transposed {
                // Each p is a contiguous run of rows: one 16-lane copy where the 4 lanes past
                // the strip are still inside A (they land in the next p's slot, or the spare
                // lanes after the strip, and are overwritten or unused).
                if height == mr && i0 + 16 <= m {
                    for p in 0..<kc { store16(load16(a.base + (p0 + p) * ld + i0), dst + p * mr) }
                } else {
                    for p in 0..<kc {
                        let src = a.base + (p0 + p) * ld + i0, row = dst + p * mr
                        for r in 0..<height { row[r] = src[r] }
                    }
                }
            } else {
                for r in 0..<height {
                    let src = a.base + (i0 + r) * ld + p0
                    for p in 0..<kc { dst[p * mr + r] = src[p] }
                }
            }
        }

        /// op(B)[p0..<p0+kc, j0..<j0+width] as strips of 32 columns, strip q at dst + q * kc:
        /// dst[q * kc + p * 32 + j]; columns past `width` zero.
        func packB(_ dst: UnsafeMutablePointer<Float>, p0: Int, kc: Int, j0: Int, width: Int) {
            let nr = FloatGEMM.tileColumns, ld = b.rowStride
            for q in stride(from: 0, to: width, by: nr) {
                let strip = dst + q * kc, stripWidth = min(nr, width - q)
                if stripWidth < nr { strip.initialize(repeating: 0, count: kc * nr) }
                if b.transposed {
                    for j in 0..<stripWidth {
                        let src = b.base + (j0 + q + j) * ld + p0
                        for p in 0..<kc { strip[p * nr + j] = src[p] }
                    }
                } else if stripWidth == nr {
                    for p in 0..<kc {
                        let src = b.base + (p0 + p) * ld + j0 + q
                        store16(load16(src), strip + p * nr)
                        store16(load16(src + 16), strip + p * nr + 16)
                    }
                } else {
                    for p in 0..<kc {
                        let src = b.base + (p0 + p) * ld + j0 + q
                        for j in 0..<stripWidth { strip[p * nr + j] = src[j] }
                    }
                }
            }
        }
    }

    /// The hot loop: a 12×32 tile of C from a packed 12-row strip of A and a packed 32-column
    /// strip of B, `kc` deep. C's tile is stored (or added to, when `add`) at row stride `ldc`.
    @inline(__always)
    static func kernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
        var c00 = F32x16(), c01 = F32x16(), c10 = F32x16(), c11 = F32x16()
        var c20 = F32x16(), c21 = F32x16(), c30 = F32x16(), c31 = F32x16()
        var c40 = F32x16(), c41 = F32x16(), c50 = F32x16(), c51 = F32x16()
        var c60 = F32x16(), c61 = F32x16(), c70 = F32x16(), c71 = F32x16()
        var c80 = F32x16(), c81 = F32x16(), c90 = F32x16(), c91 = F32x16()
        var cA0 = F32x16(), cA1 = F32x16(), cB0 = F32x16(), cB1 = F32x16()
        var pa = a, pb = b
        for _ in 0..<kc {
            let b0 = load16(pb), b1 = load16(pb + 16)
            var x = F32x16(repeating: pa[0]); c00.addProduct(x, b0); c01.addProduct(x, b1)
            x = F32x16(repeating: pa[1]); c10.addProduct(x, b0); c11.addProduct(x, b1)
            x = F32x16(repeating: pa[2]); c20.addProduct(x, b0); c21.addProduct(x, b1)
            x = F32x16(repeating: pa[3]); c30.addProduct(x, b0); c31.addProduct(x, b1)
            x = F32x16(repeating: pa[4]); c40.addProduct(x, b0); c41.addProduct(x, b1)
            x = F32x16(repeating: pa[5]); c50.addProduct(x, b0); c51.addProduct(x, b1)
            x = F32x16(repeating: pa[6]); c60.addProduct(x, b0); c61.addProduct(x, b1)
            x = F32x16(repeating: pa[7]); c70.addProduct(x, b0); c71.addProduct(x, b1)
            x = F32x16(repeating: pa[8]); c80.addProduct(x, b0); c81.addProduct(x, b1)
            x = F32x16(repeating: pa[9]); c90.addProduct(x, b0); c91.addProduct(x, b1)
            x = F32x16(repeating: pa[10]); cA0.addProduct(x, b0); cA1.addProduct(x, b1)
            x = F32x16(repeating: pa[11]); cB0.addProduct(x, b0); cB1.addProduct(x, b1)
            pa += 12
            pb += 32
        }
        put(c00, c01, c, add); put(c10, c11, c + ldc, add)
        put(c20, c21, c + 2 * ldc, add); put(c30, c31, c + 3 * ldc, add)
        put(c40, c41, c + 4 * ldc, add); put(c50, c51, c + 5 * ldc, add)
        put(c60, c61, c + 6 * ldc, add); put(c70, c71, c + 7 * ldc, add)
        put(c80, c81, c + 8 * ldc, add); put(c90, c91, c + 9 * ldc, add)
        put(cA0, cA1, c + 10 * ldc, add); put(cB0, cB1, c + 11 * ldc, add)
    }

    /// Σ x[p]·y[p] with four 16-lane accumulators, the tail scalar.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        var a0 = F32x16(), a1 = F32x16(), a2 = F32x16(), a3 = F32x16()
        var p = 0
        while p + 64 <= count {
            a0.addProduct(load16(x + p), load16(y + p))
            a1.addProduct(load16(x + p + 16), load16(y + p + 16))
            a2.addProduct(load16(x + p + 32), load16(y + p + 32))
            a3.addProduct(load16(x + p + 48), load16(y + p + 48))
            p += 64
        }
        while p + 16 <= count {
            a0.addProduct(load16(x + p), load16(y + p))
            p += 16
        }
        var total = sparrow_reduce_add_f32x16((a0 + a1) + (a2 + a3))
        while p < count {
            total = total.addingProduct(x[p], y[p])
            p += 1
        }
        return total
    }

    @inline(__always)
    static func put(_ v0: F32x16, _ v1: F32x16, _ p: UnsafeMutablePointer<Float>, _ add: Bool) {
        if add {
            store16(load16(p) + v0, p)
            store16(load16(p + 16) + v1, p + 16)
        } else {
            store16(v0, p)
            store16(v1, p + 16)
        }
    }
}
