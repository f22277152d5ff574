// Splits template source into a flat token stream: literal text, tag delimiters, and the
// expression tokens inside tags. Whitespace control is applied here, as Jinja2 does:
// `{%-`/`-%}` strip all adjacent whitespace, `trim_blocks` drops the newline after a
// block/comment tag, `lstrip_blocks` drops spaces/tabs before a block/comment tag that
// starts its line, and `+` on a tag side disables the latter two for that side.

struct Token: Equatable {
    enum Kind: Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case end
    }
    let kind: Kind
    let line: Int
}

/// Whitespace as Python's `str.isspace` (and regex `\s`) defines it.
func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
}

struct Lexer {
    private let source: [Unicode.Scalar]
    private let options: JinjaTemplate.Options
    private var position = 0
    private var line = 1
    /// Whether the last consumed tag ended a line (Jinja2's `line_starting`), which lets
    /// `lstrip_blocks` apply to text that has no newline of its own.
    private var lineStarting = true
    private var tokens: [Token] = []

    init(_ text: String, options: JinjaTemplate.Options) {
        // Jinja2 normalises newlines in template data and drops one trailing newline
        // unless keep_trailing_newline is set.
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                scalars.append("\n")
                previousWasCR = true
                continue
            }
            if !(scalar == "\n" && previousWasCR) { scalars.append(scalar) }
            previousWasCR = false
        }
        if !options.keepTrailingNewline, scalars.last == "\n" { scalars.removeLast() }
        self.source = scalars
        self.options = options
    }

    mutating func tokenize() throws -> [Token] {
        while position < source.count {
            guard let tagStart = findTagStart(from: position) else {
                emitText(String(String.UnicodeScalarView(source[position...])), line: line)
                advance(to: source.count)
                break
            }
            let tagKind = source[tagStart + 1]
            var afterOpen = tagStart + 2
            var sign: Unicode.Scalar?
            if afterOpen < source.count, source[afterOpen] == "-" || source[afterOpen] == "+" {
                sign = source[afterOpen]
                afterOpen += 1
            }
            let textLine = line
            let text = stripBeforeTag(source[position..<tagStart], sign: sign, isBlockOrComment: tagKind != "{")
            emitText(text, line: textLine)
            advance(to: tagStart)
            let tagLine = line
            advance(to: afterOpen)
            switch tagKind {
            case "#": try lexComment(startLine: tagLine)
            case "%":
                if let rawBodyStart = matchRawOpening() {
                    advance(to: rawBodyStart)
                    try lexRawBody(startLine: tagLine)
                } else {
                    tokens.append(Token(kind: .blockBegin, line: tagLine))
                    let endSign = try lexExpression(closing: "%", tagLine: tagLine)
                    tokens.append(Token(kind: .blockEnd, line: line))
                    consumeAfterTag(endSign: endSign, trims: true)
                }
            default:
                tokens.append(Token(kind: .variableBegin, line: tagLine))
                let endSign = try lexExpression(closing: "}", tagLine: tagLine)
                tokens.append(Token(kind: .variableEnd, line: line))
                consumeAfterTag(endSign: endSign, trims: false)
            }
        }
        tokens.append(Token(kind: .end, line: line))
        return tokens
    }

    // MARK: Text and whitespace control

    private func findTagStart(from start: Int) -> Int? {
        var index = start
        while index + 1 < source.count {
            if source[index] == "{", ["{", "%", "#"].contains(source[index + 1]) { return index }
            index += 1
        }
        return nil
    }

    private func stripBeforeTag(_ text: ArraySlice<Unicode.Scalar>, sign: Unicode.Scalar?, isBlockOrComment: Bool) -> String {
        var end = text.endIndex
        if sign == "-" {
            while end > text.startIndex, isPythonWhitespace(text[end - 1]) { end -= 1 }
        } else if sign != "+", options.lstripBlocks, isBlockOrComment {
            let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? text.startIndex
            let onlyWhitespace = lineStart < text.endIndex && text[lineStart...].allSatisfy(isPythonWhitespace)
            if onlyWhitespace, lineStart > text.startIndex || lineStarting { end = lineStart }
        }
        return String(String.UnicodeScalarView(text[text.startIndex..<end]))
    }

    private mutating func emitText(_ text: String, line: Int) {
        if !text.isEmpty { tokens.append(Token(kind: .text(text), line: line)) }
    }

    /// After a tag's closing delimiter: `-` strips all following whitespace; otherwise
    /// trim_blocks removes one newline after block and comment tags (not after `+`).
    private mutating func consumeAfterTag(endSign: Unicode.Scalar?, trims: Bool) {
        let start = position
        if endSign == "-" {
            var end = position
            while end < source.count, isPythonWhitespace(source[end]) { end += 1 }
            advance(to: end)
        } else if endSign != "+", trims, options.trimBlocks, position < source.count, source[position] == "\n" {
            advance(to: position + 1)
        }
        lineStarting = position > start ? source[position - 1] == "\n" : false
    }

    private mutating func advance(to newPosition: Int) {
        while position < newPosition {
            if source[position] == "\n" { line += 1 }
            position += 1
        }
    }

    private func matches(_ literal: String, at index: Int) -> Bool {
        var i = index
        for scalar in literal.unicodeScalars {
            guard i < source.count, source[i] == scalar else { return false }
            i += 1
        }
        return true
    }

    private func skippingWhitespace(from index: Int) -> Int {
        var i = index
        while i < source.count, isPythonWhitespace(source[i]) { i += 1 }
        return i
    }

    // MARK: Comments and raw blocks

    private mutating func lexComment(startLine: Int) throws {
        var index = position
        while index + 1 < source.count, !(source[index] == "#" && source[index + 1] == "}") { index += 1 }
        guard index + 1 < source.count else { throw JinjaError("missing end of comment tag", line: startLine) }
        let endSign: Unicode.Scalar? = index > position && (source[index - 1] == "-" || source[index - 1] == "+") ? source[index - 1] : nil
        advance(to: index + 2)
        consumeAfterTag(endSign: endSign, trims: true)
    }

    /// If the `{%` just consumed opens `{% raw %}`, returns the index after its `%}`.
    private func matchRawOpening() -> Int? {
        var index = skippingWhitespace(from: position)
        guard matches("raw", at: index) else { return nil }
        index = skippingWhitespace(from: index + 3)
        if matches("-%}", at: index) { return skippingWhitespace(from: index + 3) }
        return matches("%}", at: index) ? index + 2 : nil
    }

    private mutating func lexRawBody(startLine: Int) throws {
        var search = position
        while let tagStart = findTagStart(from: search) {
            search = tagStart + 1
            guard source[tagStart + 1] == "%" else { continue }
            var index = tagStart + 2
            var sign: Unicode.Scalar?
            if index < source.count, source[index] == "-" || source[index] == "+" { sign = source[index]; index += 1 }
            index = skippingWhitespace(from: index)
            guard matches("endraw", at: index) else { continue }
            index = skippingWhitespace(from: index + 6)
            var endSign: Unicode.Scalar?
            if index < source.count, source[index] == "-" || source[index] == "+" { endSign = source[index]; index += 1 }
            guard matches("%}", at: index) else { continue }
            let textLine = line
            emitText(stripBeforeTag(source[position..<tagStart], sign: sign, isBlockOrComment: true), line: textLine)
            advance(to: index + 2)
            consumeAfterTag(endSign: endSign, trims: true)
            return
        }
        throw JinjaError("missing end of raw directive", line: startLine)
    }

    // MARK: Expressions inside tags

    /// Lexes expression tokens up to the tag's closing delimiter (`%}` or `}}`, which only
    /// count outside brackets) and returns the whitespace-control sign before it.
    private mutating func lexExpression(closing: Unicode.Scalar, tagLine: Int) throws -> Unicode.Scalar? {
        var brackets: [Unicode.Scalar] = []
        let closer = String(closing) + "}"
        while true {
            advance(to: skippingWhitespace(from: position))
            guard position < source.count else {
                throw JinjaError("unexpected end of template, expected '\(closer)' to close the tag opened here", line: tagLine)
            }
            if brackets.isEmpty {
                if matches(closer, at: position) { advance(to: position + 2); return nil }
                if matches("-" + closer, at: position) || (closing == "%" && matches("+" + closer, at: position)) {
                    let sign = source[position]
                    advance(to: position + 3)
                    return sign
                }
            }
            try lexToken(brackets: &brackets)
        }
    }

    private mutating func lexToken(brackets: inout [Unicode.Scalar]) throws {
        let scalar = source[position]
        let tokenLine = line
        if scalar == "_" || scalar.properties.isAlphabetic {
            var end = position + 1
            while end < source.count, source[end] == "_" || source[end].properties.isAlphabetic || source[end].properties.numericType != nil { end += 1 }
            tokens.append(Token(kind: .name(String(String.UnicodeScalarView(source[position..<end]))), line: tokenLine))
            advance(to: end)
        } else if ("0"..."9").contains(scalar) {
            try lexNumber()
        } else if scalar == "'" || scalar == "\"" {
            try lexString(quote: scalar)
        } else {
            for op in ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                       "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"] where matches(op, at: position) {
                let first = op.unicodeScalars.first!
                switch first {
                case "(": brackets.append(")")
                case "[": brackets.append("]")
                case "{": brackets.append("}")
                case ")", "]", "}":
                    guard let expected = brackets.popLast() else { throw JinjaError("unexpected '\(op)'", line: tokenLine) }
                    guard expected == first else { throw JinjaError("unexpected '\(op)', expected '\(expected)'", line: tokenLine) }
                default: break
                }
                tokens.append(Token(kind: .op(op), line: tokenLine))
                advance(to: position + op.unicodeScalars.count)
                return
            }
            throw JinjaError("unexpected character '\(scalar)' in tag", line: tokenLine)
        }
    }

    private mutating func lexNumber() throws {
        let tokenLine = line
        func digits(from start: Int) -> Int {
            var end = start
            while end < source.count, ("0"..."9").contains(source[end]) || (source[end] == "_" && end > start) { end += 1 }
            return end
        }
        var end = digits(from: position)
        var isFloat = false
        // After `.` (as in `foo.0`) a number is an index, never a float.
        let afterDot = tokens.last?.kind == .op(".")
        if !afterDot, end + 1 < source.count, source[end] == ".", ("0"..."9").contains(source[end + 1]) {
            end = digits(from: end + 1)
            isFloat = true
        }
        if !afterDot, end < source.count, source[end] == "e" || source[end] == "E" {
            var exponent = end + 1
            if exponent < source.count, source[exponent] == "+" || source[exponent] == "-" { exponent += 1 }
            if exponent < source.count, ("0"..."9").contains(source[exponent]) {
                end = digits(from: exponent)
                isFloat = true
            }
        }
        let text = String(String.UnicodeScalarView(source[position..<end])).replacingUnderscores()
        if isFloat {
            guard let value = Double(text) else { throw JinjaError("invalid number '\(text)'", line: tokenLine) }
            tokens.append(Token(kind: .float(value), line: tokenLine))
        } else {
            guard let value = Int(text) else { throw JinjaError("integer literal '\(text)' is too large", line: tokenLine) }
            tokens.append(Token(kind: .integer(value), line: tokenLine))
        }
        advance(to: end)
    }

    /// String literals use Python escape sequences (Jinja2 decodes them with
    /// `unicode-escape`); unknown escapes keep their backslash.
    private mutating func lexString(quote: Unicode.Scalar) throws {
        let tokenLine = line
        var index = position + 1
        var result = String.UnicodeScalarView()
        while index < source.count, source[index] != quote {
            let scalar = source[index]
            guard scalar == "\\", index + 1 < source.count else {
                result.append(scalar)
                index += 1
                continue
            }
            let escape = source[index + 1]
            index += 2
            switch escape {
            case "\n": break
            case "\\", "'", "\"": result.append(escape)
            case "a": result.append("\u{07}")
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "t": result.append("\t")
            case "v": result.append("\u{0B}")
            case "0"..."7":
                var value = escape.value - 48
                var count = 1
                while count < 3, index < source.count, ("0"..."7").contains(source[index]) {
                    value = value * 8 + source[index].value - 48
                    index += 1
                    count += 1
                }
                result.append(Unicode.Scalar(value)!)
            case "x", "u", "U":
                let width = escape == "x" ? 2 : escape == "u" ? 4 : 8
                guard index + width <= source.count,
                      let value = UInt32(String(String.UnicodeScalarView(source[index..<index + width])), radix: 16),
                      let decoded = Unicode.Scalar(value)
                else { throw JinjaError("invalid \\\(escape) escape in string literal", line: tokenLine) }
                result.append(decoded)
                index += width
            default:
                result.append("\\")
                result.append(escape)
            }
        }
        guard index < source.count else { throw JinjaError("unterminated string literal", line: tokenLine) }
        tokens.append(Token(kind: .string(String(result)), line: tokenLine))
        advance(to: index + 1)
    }
}

extension String {
    /// Python allows `_` digit separators in number literals and `int()` input.
    func replacingUnderscores() -> String { String(unicodeScalars.filter { $0 != "_" }) }
}
