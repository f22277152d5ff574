/// Splits text into the words that byte-level BPE encodes independently, reproducing the
/// regex cascades llama.cpp applies per `tokenizer.ggml.pre`.
///
/// llama.cpp runs its regexes one after another, each one splitting the pieces left by the
/// previous one, and a regex never looks across a piece boundary. Each stage below is a
/// hand-written scanner with exactly the semantics llama.cpp gets for that regex, either from
/// its custom C++ scanner (GPT-2) or from std::regex over its category-collapsed text (the rest).
enum PreTokenizer: Sendable, Equatable {
    /// `tokenizer.ggml.pre` "gpt-2" and its aliases: the GPT-2 regex alone.
    case gpt2
    /// "smollm" (also StarCoder and others): every digit isolated, then the GPT-2 regex.
    case smollm
    /// "qwen2": the Qwen2 regex (case-sensitive contraction classes, single digits).
    case qwen2
    /// "default" or no pre type: punctuation runs, GPT-2, digit runs, then digit triples.
    case standard

    init?(preType: String?) {
        switch preType ?? "default" {
        case "default", "":
            self = .standard
        case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
             "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais", "trillion",
             "granite-docling":
            self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2":
            self = .smollm
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open":
            self = .qwen2
        default:
            return nil
        }
    }

    /// Whether llama.cpp cleans up spaces before punctuation when detokenizing.
    var cleansSpaces: Bool {
        switch self {
        case .gpt2, .standard: return true
        case .smollm, .qwen2: return false
        }
    }

    /// Word boundaries as ranges into `scalars`.
    func split(_ scalars: [UInt32]) -> [Range<Int>] {
        guard !scalars.isEmpty else { return [] }
        let flags = scalars.map(CodepointFlags.init)
        let text = ScannerText(scalars: scalars, flags: flags)
        var pieces = [0..<scalars.count]
        for stage in stages {
            var next: [Range<Int>] = []
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces {
                stage.split(text, piece, into: &next)
            }
            pieces = next
        }
        return pieces
    }

    private var stages: [Stage] {
        switch self {
        case .gpt2: return [.gpt2]
        case .smollm: return [.singleNumber, .gpt2]
        case .qwen2: return [.qwen2]
        case .standard: return [.punctuationRun, .gpt2, .numberRun, .asciiDigitTriple]
        }
    }
}

struct ScannerText {
    let scalars: [UInt32]
    let flags: [CodepointFlags]
}

private enum Stage {
    case gpt2
    case qwen2
    /// `\p{N}`
    case singleNumber
    /// `\p{N}+`
    case numberRun
    /// `[\p{P}\$\+<=>\^~\|]+`
    case punctuationRun
    /// `[0-9][0-9][0-9]`
    case asciiDigitTriple

    func split(_ text: ScannerText, _ piece: Range<Int>, into out: inout [Range<Int>]) {
        switch self {
        case .gpt2: scanGPT2(text, piece, &out)
        case .qwen2: scanQwen2(text, piece, &out)
        case .singleNumber:
            splitMatches(piece, &out) { pos in text.flags[pos].isNumber ? 1 : 0 }
        case .numberRun:
            splitMatches(piece, &out) { pos in
                var end = pos
                while end < piece.upperBound && text.flags[end].isNumber { end += 1 }
                return end - pos
            }
        case .punctuationRun:
            splitMatches(piece, &out) { pos in
                var end = pos
                while end < piece.upperBound && isPunctuationForDefaultRegex(text, end) { end += 1 }
                return end - pos
            }
        case .asciiDigitTriple:
            splitMatches(piece, &out) { pos in
                guard pos + 3 <= piece.upperBound else { return 0 }
                for i in pos..<(pos + 3) where !(0x30...0x39).contains(text.scalars[i]) { return 0 }
                return 3
            }
        }
    }
}

/// Emits regex_iterator-style pieces: each match, and each unmatched gap between matches.
/// `matchLength` returns the length of the match starting at a position, or 0 for none.
private func splitMatches(_ piece: Range<Int>, _ out: inout [Range<Int>], matchLength: (Int) -> Int) {
    var gapStart = piece.lowerBound
    var pos = piece.lowerBound
    while pos < piece.upperBound {
        let length = matchLength(pos)
        if length > 0 {
            if gapStart < pos { out.append(gapStart..<pos) }
            out.append(pos..<(pos + length))
            pos += length
            gapStart = pos
        } else {
            pos += 1
        }
    }
    if gapStart < piece.upperBound { out.append(gapStart..<piece.upperBound) }
}

/// llama.cpp collapses `\p{P}` to the punctuation category plus this ASCII list, and the
/// default regex adds `$+<=>^~|`.
private func isPunctuationForDefaultRegex(_ text: ScannerText, _ pos: Int) -> Bool {
    let value = text.scalars[pos]
    if value < 128 {
        switch UInt8(value) {
        case UInt8(ascii: "!")...UInt8(ascii: "#"), UInt8(ascii: "%")...UInt8(ascii: "*"),
             UInt8(ascii: ",")...UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: ";"),
             UInt8(ascii: "?"), UInt8(ascii: "@"), UInt8(ascii: "[")...UInt8(ascii: "]"),
             UInt8(ascii: "_"), UInt8(ascii: "{"), UInt8(ascii: "}"),
             UInt8(ascii: "$"), UInt8(ascii: "+"), UInt8(ascii: "<"), UInt8(ascii: "="),
             UInt8(ascii: ">"), UInt8(ascii: "^"), UInt8(ascii: "~"), UInt8(ascii: "|"):
            return true
        default:
            return false
        }
    }
    let flags = text.flags[pos]
    return !flags.isWhitespace && flags.contains(.punctuation)
}

private let apostrophe = UInt32(UInt8(ascii: "'"))
private let space = UInt32(UInt8(ascii: " "))
private let carriageReturn = UInt32(UInt8(ascii: "\r"))
private let lineFeed = UInt32(UInt8(ascii: "\n"))

/// Scalar and flags lookups that treat positions outside the piece as "nothing there".
private struct PieceView {
    let text: ScannerText
    let piece: Range<Int>

    @inline(__always) func scalar(_ pos: Int) -> UInt32? {
        piece.contains(pos) ? text.scalars[pos] : nil
    }

    @inline(__always) func flags(_ pos: Int) -> CodepointFlags {
        piece.contains(pos) ? text.flags[pos] : .none
    }

    func whitespaceRun(from pos: Int) -> Int {
        var count = 0
        while flags(pos + count).isWhitespace { count += 1 }
        return count
    }
}

/// Length of a contraction (`'s 't 're 've 'm 'll 'd`) at `pos`, or 0.
/// llama.cpp's GPT-2 regex is case-sensitive; the Qwen2 one accepts either case.
private func contractionLength(_ view: PieceView, at pos: Int, caseInsensitive: Bool) -> Int {
    guard view.scalar(pos) == apostrophe, let second = view.scalar(pos + 1) else { return 0 }
    func fold(_ value: UInt32) -> UInt8 {
        guard value < 128 else { return 0 }
        let byte = UInt8(value)
        return caseInsensitive && (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
    }
    switch fold(second) {
    case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
        return 2
    default:
        break
    }
    guard let third = view.scalar(pos + 2) else { return 0 }
    switch (fold(second), fold(third)) {
    case (UInt8(ascii: "r"), UInt8(ascii: "e")), (UInt8(ascii: "v"), UInt8(ascii: "e")), (UInt8(ascii: "l"), UInt8(ascii: "l")):
        return 3
    default:
        return 0
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// with the behaviour of llama.cpp's custom GPT-2 scanner.
private func scanGPT2(_ text: ScannerText, _ piece: Range<Int>, _ out: inout [Range<Int>]) {
    let view = PieceView(text: text, piece: piece)
    var start = piece.lowerBound
    var pos = piece.lowerBound
    func emit(_ end: Int) {
        if end > start { out.append(start..<end) }
        start = end
        pos = end
    }
    while pos < piece.upperBound {
        let contraction = contractionLength(view, at: pos, caseInsensitive: false)
        if contraction > 0 {
            emit(pos + contraction)
            continue
        }
        let leadingSpace = view.scalar(pos) == space
        let first = leadingSpace ? view.flags(pos + 1) : view.flags(pos)
        let body = leadingSpace ? pos + 1 : pos
        if first.isLetter || first.isNumber || first.isOther {
            var end = body
            if first.isLetter {
                while view.flags(end).isLetter { end += 1 }
            } else if first.isNumber {
                while view.flags(end).isNumber { end += 1 }
            } else {
                while view.flags(end).isOther { end += 1 }
            }
            emit(end)
            continue
        }
        let whitespace = view.whitespaceRun(from: pos)
        if whitespace > 1 && pos + whitespace < piece.upperBound {
            emit(pos + whitespace - 1)
        } else if whitespace > 0 {
            emit(pos + whitespace)
        } else {
            emit(pos + 1)
        }
    }
}

/// `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with ECMAScript semantics (first alternative that matches wins), as std::regex runs it.
private func scanQwen2(_ text: ScannerText, _ piece: Range<Int>, _ out: inout [Range<Int>]) {
    let view = PieceView(text: text, piece: piece)
    var pos = piece.lowerBound
    func emit(_ end: Int) {
        out.append(pos..<end)
        pos = end
    }
    while pos < piece.upperBound {
        let contraction = contractionLength(view, at: pos, caseInsensitive: true)
        if contraction > 0 {
            emit(pos + contraction)
            continue
        }
        let scalar = text.scalars[pos]
        let flags = text.flags[pos]
        let isLineBreak = scalar == carriageReturn || scalar == lineFeed
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if flags.isLetter || (!isLineBreak && !flags.isNumber && view.flags(pos + 1).isLetter) {
            var end = pos + 1
            while view.flags(end).isLetter { end += 1 }
            emit(end)
            continue
        }
        // \p{N}
        if flags.isNumber {
            emit(pos + 1)
            continue
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let otherStart = (scalar == space && view.flags(pos + 1).isOther) ? pos + 1 : pos
        if view.flags(otherStart).isOther {
            var end = otherStart
            while view.flags(end).isOther { end += 1 }
            while let next = view.scalar(end), next == carriageReturn || next == lineFeed { end += 1 }
            emit(end)
            continue
        }
        // Only whitespace is left: \s*[\r\n]+ ends at the run's last line break.
        let whitespace = view.whitespaceRun(from: pos)
        var lastLineBreakEnd: Int?
        for i in pos..<(pos + whitespace) where text.scalars[i] == carriageReturn || text.scalars[i] == lineFeed {
            lastLineBreakEnd = i + 1
        }
        if let lastLineBreakEnd {
            emit(lastLineBreakEnd)
        } else if whitespace > 1 && pos + whitespace < piece.upperBound {
            // \s+(?!\S) backs off one so the final space can lead the next word.
            emit(pos + whitespace - 1)
        } else {
            emit(pos + max(whitespace, 1))
        }
    }
}
