// Activations in "token panels": the int8 quants of up to 16 tokens transposed so that one
// 512-bit vector holds the same four consecutive elements of every token. A kernel then
// broadcasts four weight bytes against it and each int32 lane of the product accumulates one
// token: a weight row meets 16 tokens with no horizontal sums, and every lane still holds
// exactly the integer llama.cpp's kernels form (four products), so float rounding is unchanged.
// Batches of up to 8 or 4 tokens give each token 2 or 4 lanes instead, holding 8 or 16
// consecutive elements (`PanelLanes`), so they still fill every lane.

/// One panel of Q8 blocks (32 elements): quants and per-block, per-token values.
struct Q8Panel {
    static let width = 16
    /// [cols/4][16 lanes][4 bytes] (see `PanelLayout.transpose`), each quant + 128 (unsigned,
    /// for the dot product's unsigned operand).
    let quants: UnsafePointer<UInt8>
    /// [cols/32][16]: the block scale d and ggml's q8_1 sum s (see `Q8Row`).
    let scales: UnsafePointer<Float>
    let sums: UnsafePointer<Float>
}

/// One panel of Q8_K super-blocks (256 elements).
struct Q8KPanel {
    /// [cols/4][16 lanes][4 bytes].
    let quants: UnsafePointer<Int8>
    /// [cols/256][16] super-block scales.
    let scales: UnsafePointer<Float>
    /// [cols/16][16] sums of each 16-element group's quants.
    let groupSums: UnsafePointer<Int32>
}

/// Panel arrays carved from one buffer, panel after panel.
struct PanelLayout {
    let cols: Int
    /// Adjacent int32 lanes each token takes.
    let lanesPerToken: Int
    let panelCount: Int
    var tokensPerPanel: Int { Q8Panel.width / lanesPerToken }

    /// Panels for `tokens`, with as many lanes per token as fill a vector (4 for up to 4
    /// tokens, 2 for up to 8, else 1).
    init(cols: Int, tokens: Int) {
        self.cols = cols
        lanesPerToken = tokens <= 4 ? 4 : tokens <= 8 ? 2 : 1
        let perPanel = Q8Panel.width / lanesPerToken
        panelCount = (tokens + perPanel - 1) / perPanel
    }

    /// Bytes per panel: quants plus two 4-byte values per 32 elements (Q8) or one per 16 plus
    /// one per 256 (Q8_K).
    var panelBytes: Int { cols * 16 + cols * 16 / 16 * 4 + cols / 256 * 16 * 4 }
    var byteCount: Int { panelCount * panelBytes }

    private func base(_ memory: UnsafeMutableRawPointer, _ panel: Int) -> UnsafeMutableRawPointer { memory + panel * panelBytes }

    func q8(_ memory: UnsafeMutableRawPointer, _ panel: Int) -> Q8Panel {
        let b = base(memory, panel)
        return Q8Panel(quants: .init(b.assumingMemoryBound(to: UInt8.self)),
                       scales: .init((b + cols * 16).assumingMemoryBound(to: Float.self)),
                       sums: .init((b + cols * 18).assumingMemoryBound(to: Float.self)))
    }

    func q8K(_ memory: UnsafeMutableRawPointer, _ panel: Int) -> Q8KPanel {
        let b = base(memory, panel)
        return Q8KPanel(quants: .init(b.assumingMemoryBound(to: Int8.self)),
                        scales: .init((b + cols * 16).assumingMemoryBound(to: Float.self)),
                        groupSums: .init((b + cols * 16 + cols / 4).assumingMemoryBound(to: Int32.self)))
    }

    /// Copies the quants of tokens first..<first+count (row-major, `cols` apart) into panel
    /// order: per chunk of 4 * lanesPerToken elements, 64 bytes holding that chunk of every
    /// token. Each byte XOR `flip`; the lanes of missing tokens become zero.
    func transpose(_ rows: UnsafePointer<Int8>, first: Int, count: Int, flip: UInt32 = 0, into quants: UnsafeRawPointer) {
        let dst = UnsafeMutableRawPointer(mutating: quants)
        let width = 4 * lanesPerToken, chunks = cols / width
        for t in 0..<tokensPerPanel {
            let src = UnsafeRawPointer(rows + (first + t) * cols)
            for c in 0..<chunks {
                for k in 0..<lanesPerToken {
                    let value = t < count ? src.loadUnaligned(fromByteOffset: width * c + 4 * k, as: UInt32.self) ^ flip : 0
                    dst.storeBytes(of: value, toByteOffset: 64 * c + width * t + 4 * k, as: UInt32.self)
                }
            }
        }
    }

    /// Fills `value(token, i)` for i in 0..<perToken into [perToken][16 lanes], zero for
    /// missing tokens.
    @inline(__always)
    func fillColumns<T: Numeric>(_ dst: UnsafePointer<T>, perToken: Int, count: Int, _ value: (Int, Int) -> T) {
        let out = UnsafeMutablePointer(mutating: dst)
        for i in 0..<perToken {
            for lane in 0..<Q8Panel.width {
                let t = lane / lanesPerToken
                out[i * Q8Panel.width + lane] = t < count ? value(t, i) : 0
            }
        }
    }
}
