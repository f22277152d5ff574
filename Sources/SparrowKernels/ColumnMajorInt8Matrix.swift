import CSparrowSIMD

/// A copy of a weight matrix laid out for products that skip most of their input (contextual
/// sparsity on a projection's input): a skipped input is a skipped column, so columns must be
/// contiguous. Weights are int8, stored column by column within tiles of rows; a tile's column
/// is one run of bytes (about a kilobyte), and a skipped one is never fetched. Each row has one
/// f32 scale per block of 256 columns: one scale per whole row let a few large weights coarsen
/// every other (measured: TEAL 70% on Qwen2.5-Coder-0.5B's down, +11% perplexity against +8%
/// with its Q8_0 copy). Within each group of 32 rows the bytes are in the order the unpack
/// instructions interleave two columns in (`sparrow_interleave_low_i16`), so that two
/// columns' products land in row order.
public final class ColumnMajorInt8Matrix: @unchecked Sendable {
    public let rows, cols: Int
    /// Columns sharing a row's scale.
    static let blockColumns = 256
    /// Rows per tile (a multiple of 32; the last tile may be shorter).
    let tileRows: Int
    let paddedRows: Int
    var blockCount: Int { Self.blockCount(cols: cols) }
    static func blockCount(cols: Int) -> Int { (cols + blockColumns - 1) / blockColumns }
    private let data: UnsafeMutableRawPointer
    /// Block-major: block k's scales for every padded row, in row order.
    private let rowScales: UnsafeMutablePointer<Float>

    /// Bytes a product with `columns` selected inputs reads (their columns and the row scales).
    public func bytesRead(columns: Int) -> Int { Self.bytesRead(rows: rows, cols: cols, columns: columns) }
    /// The same for a copy of a rows x cols matrix, before making one.
    public static func bytesRead(rows: Int, cols: Int, columns: Int) -> Int {
        (columns + 4 * blockCount(cols: cols)) * ((rows + 31) / 32 * 32)
    }

    /// Copies `w`, with as many tiles per worker of `workers` as keep a tile near `targetTileRows`.
    public init(_ w: WeightMatrix, workers: Int, targetTileRows: Int = 1024) {
        rows = w.rows
        cols = w.cols
        paddedRows = (rows + 31) / 32 * 32
        let perWorker = max(1, (paddedRows + targetTileRows * workers - 1) / (targetTileRows * workers))
        let tiles = perWorker * max(workers, 1)
        tileRows = max(32, ((paddedRows + tiles - 1) / tiles + 31) / 32 * 32)
        data = .allocate(byteCount: paddedRows * cols, alignment: 64)
        data.initializeMemory(as: Int8.self, repeating: 0, count: paddedRows * cols)
        let blocks = Self.blockCount(cols: cols)
        rowScales = .allocate(capacity: blocks * paddedRows)
        rowScales.initialize(repeating: 0, count: blocks * paddedRows)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for r in 0..<rows {
            w.dequantizeRow(r, into: row)
            let (tile, position) = Self.location(ofRow: r, tileRows: tileRows)
            let base = data.assumingMemoryBound(to: Int8.self) + tile * tileRows * cols
            let length = min(tileRows, paddedRows - tile * tileRows)
            for k in 0..<blocks {
                let columns = (k * Self.blockColumns)..<min(cols, (k + 1) * Self.blockColumns)
                var amax: Float = 0
                for c in columns { amax = max(amax, abs(row[c])) }
                let scale = amax / 127, inverse: Float = scale > 0 ? 1 / scale : 0
                rowScales[k * paddedRows + r] = scale
                for c in columns { base[c * length + position] = Int8((row[c] * inverse).rounded()) }
            }
        }
    }

    deinit {
        data.deallocate()
        rowScales.deallocate()
    }

    var tileCount: Int { (paddedRows + tileRows - 1) / tileRows }
    func rowsInTile(_ t: Int) -> Int { min(tileRows, paddedRows - t * tileRows) }

    /// Row r's tile and its byte position within the tile's columns: in each group of 32, the
    /// interleave's 128-bit lane k holds rows 4k..4k+3 in its low words and 16+4k..16+4k+3 in
    /// its high ones.
    static func location(ofRow r: Int, tileRows: Int) -> (tile: Int, position: Int) {
        let tile = r / tileRows, inTile = r % tileRows, group = inTile / 32, i = inTile % 32
        let half = i / 16, k = (i % 16) / 4, j = i % 4
        return (tile, group * 32 + 8 * k + 4 * half + j)
    }

    fileprivate func tileBase(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(data) + t * tileRows * cols }
    /// Tile t's rows' scales for column block k.
    fileprivate func scales(_ t: Int, block k: Int) -> UnsafePointer<Float> { UnsafePointer(rowScales) + k * paddedRows + t * tileRows }
}

extension MatMul {
    /// output[r] = sum over c in `columns` of W[r, c] * input[c]: the product with every other
    /// input taken as zero, reading only the selected columns (ascending, for the prefetcher).
    /// The selected inputs are quantised to 16-bit integers with one scale, two columns per
    /// multiply-add of word pairs, summed in int32 per block of row scales.
    public func selectedColumns(_ w: ColumnMajorInt8Matrix, _ input: UnsafePointer<Float>, columns: UnsafeBufferPointer<Int32>,
                                into output: UnsafeMutablePointer<Float>) {
        switch instructions {
        case .vnni: selectedColumns(w, input, columns: columns, into: output, VNNIDot.self)
        case .avx2: selectedColumns(w, input, columns: columns, into: output, AVX2Dot.self)
        case .portable: selectedColumns(w, input, columns: columns, into: output, PortableDot.self)
        }
    }

    private func selectedColumns<D: Int8DotProduct>(_ w: ColumnMajorInt8Matrix, _ input: UnsafePointer<Float>,
                                                    columns: UnsafeBufferPointer<Int32>, into output: UnsafeMutablePointer<Float>,
                                                    _: D.Type) {
        var amax: Float = 0
        for c in columns { amax = max(amax, abs(input[Int(c)])) }
        guard amax > 0 else { return output.initialize(repeating: 0, count: w.rows) }
        // A block's sums are exact in int32: |sum| <= 256 * 127 * 32767 < 2^31.
        let limit: Float = 32767, inverse = limit / amax, inputScale = amax / limit
        // Pairs of columns of one block each (a block's odd last column pairs with itself and
        // a zero second input), with their quantised inputs as one word pair; `runs` holds
        // each block's last pair + 1.
        let most = columns.count + w.blockCount
        let pairScratch = columnPairScratch.bytes((3 * most + 2 * w.blockCount) * 4)
        let first = pairScratch.assumingMemoryBound(to: Int32.self), second = first + most, words = second + most
        let runBlocks = words + most, runEnds = runBlocks + w.blockCount
        var pairs = 0, runs = 0, i = 0
        while i < columns.count {
            let block = Int(columns[i]) / ColumnMajorInt8Matrix.blockColumns
            while i < columns.count && Int(columns[i]) / ColumnMajorInt8Matrix.blockColumns == block {
                let a = columns[i], paired = i + 1 < columns.count && Int(columns[i + 1]) / ColumnMajorInt8Matrix.blockColumns == block
                let b = paired ? columns[i + 1] : a
                let qa = Int32((input[Int(a)] * inverse).rounded()), qb = paired ? Int32((input[Int(b)] * inverse).rounded()) : 0
                first[pairs] = a
                second[pairs] = b
                words[pairs] = (qa & 0xFFFF) | (qb &<< 16)
                pairs += 1
                i += paired ? 2 : 1
            }
            runBlocks[runs] = Int32(block)
            runEnds[runs] = Int32(pairs)
            runs += 1
        }
        let tiles = w.tileCount
        let sums = partialScratch.bytes(pool.threadCount * w.tileRows * 4)
        pool.run { worker, workers in
            let acc = (sums + worker * w.tileRows * 4).assumingMemoryBound(to: SIMD16<Int32>.self)
            for t in ThreadPool.chunk(worker, of: workers, count: tiles) {
                let length = w.rowsInTile(t), groups = length / 32, base = w.tileBase(t)
                let start = t * w.tileRows, valid = min(length, w.rows - start), out = output + start
                out.initialize(repeating: 0, count: valid)
                func column(_ p: Int, _ which: UnsafePointer<Int32>) -> UnsafeRawPointer { base + Int(which[p]) * length }
                var p = 0
                for run in 0..<runs {
                    let end = Int(runEnds[run])
                    acc.initialize(repeating: .zero, count: 2 * groups)
                    // Four pairs per pass over the tile's sums, so that their loads and stores
                    // are shared (the sums stay in L1; the columns stream from memory).
                    while p + 4 <= end {
                        let a = (column(p, first), column(p + 1, first), column(p + 2, first), column(p + 3, first))
                        let b = (column(p, second), column(p + 1, second), column(p + 2, second), column(p + 3, second))
                        let word = (SIMD16<Int32>(repeating: words[p]), SIMD16<Int32>(repeating: words[p + 1]),
                                    SIMD16<Int32>(repeating: words[p + 2]), SIMD16<Int32>(repeating: words[p + 3]))
                        // The next four pairs' columns are fetched a line each per line used
                        // here: runs this short end before the hardware prefetcher ramps up.
                        let prefetch = p + 8 <= pairs
                        for g in 0..<groups {
                            if prefetch, g & 1 == 0 {
                                for q in (p + 4)..<(p + 8) {
                                    sparrow_prefetch(column(q, first) + 32 * g, 64)
                                    sparrow_prefetch(column(q, second) + 32 * g, 64)
                                }
                            }
                            var low = acc[2 * g], high = acc[2 * g + 1]
                            Self.addPair(a.0, b.0, group: g, word.0, &low, &high, D.self)
                            Self.addPair(a.1, b.1, group: g, word.1, &low, &high, D.self)
                            Self.addPair(a.2, b.2, group: g, word.2, &low, &high, D.self)
                            Self.addPair(a.3, b.3, group: g, word.3, &low, &high, D.self)
                            acc[2 * g] = low
                            acc[2 * g + 1] = high
                        }
                        p += 4
                    }
                    while p < end {
                        let a = column(p, first), b = column(p, second), word = SIMD16<Int32>(repeating: words[p])
                        for g in 0..<groups { Self.addPair(a, b, group: g, word, &acc[2 * g], &acc[2 * g + 1], D.self) }
                        p += 1
                    }
                    // acc[2g] holds rows 32g..32g+15, acc[2g+1] rows 32g+16..32g+31: sums in row order.
                    let scales = w.scales(t, block: Int(runBlocks[run])), totals = UnsafeRawPointer(acc)
                    var i = 0
                    while i + 16 <= valid {
                        let v = sparrow_i32x16_to_f32(totals.simd(SIMD16<Int32>.self, at: 4 * i)) * load16(scales + i)
                        store16(load16(out + i).addingProduct(v, SIMD16<Float>(repeating: inputScale)), out + i)
                        i += 16
                    }
                    for j in i..<valid { out[j] += Float(totals.load(fromByteOffset: 4 * j, as: Int32.self)) * scales[j] * inputScale }
                }
            }
        }
    }

    /// Two columns' products for one group of 32 rows: rows 0..15 into `low`, 16..31 into `high`.
    @inline(__always)
    private static func addPair<D: Int8DotProduct>(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, group g: Int, _ word: SIMD16<Int32>,
                                                   _ low: inout SIMD16<Int32>, _ high: inout SIMD16<Int32>, _: D.Type) {
        let x = sparrow_i8x32_to_i16(a.simd(SIMD32<Int8>.self, at: 32 * g))
        let y = sparrow_i8x32_to_i16(b.simd(SIMD32<Int8>.self, at: 32 * g))
        low = D.wordPairDot(low, sparrow_interleave_low_i16(x, y), word)
        high = D.wordPairDot(high, sparrow_interleave_high_i16(x, y), word)
    }
}
