// JSON in and out of `JinjaValue`. Output matches Python's
// `json.dumps(value, ensure_ascii=False, indent=indent)`, which is what Hugging Face
// transformers installs as the `tojson` filter for chat templates.

extension JinjaValue {
    /// Parses JSON text, keeping object key order (needed to reproduce `tojson` output of
    /// request data such as tool schemas). Integers that fit `Int` become `.int`, other
    /// numbers `.double`.
    public init(json text: String) throws {
        var parser = JSONParser(bytes: Array(text.utf8))
        self = try parser.parseDocument()
    }

    /// Serialises like Python `json.dumps(value, ensure_ascii=False, indent=indent,
    /// separators=separators)`: by default `", "` and `": "` without indent, `","` and
    /// `": "` with it (items then go on their own indented lines).
    public func jsonString(indent: Int? = nil, separators: (item: String, key: String)? = nil) -> String {
        var output = ""
        let format = JSONFormat(indent: indent, item: separators?.item ?? (indent == nil ? ", " : ","), key: separators?.key ?? ": ")
        writeJSON(to: &output, format: format, level: 0)
        return output
    }

    private func writeJSON(to output: inout String, format: JSONFormat, level: Int) {
        switch self {
        case .none: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .int(let value): output += String(value)
        case .double(let value): output += pythonJSONFloat(value)
        case .string(let value): writeJSONString(value, to: &output)
        case .array(let elements):
            writeContainer(open: "[", close: "]", count: elements.count, to: &output, format: format, level: level) { index, output in
                elements[index].writeJSON(to: &output, format: format, level: level + 1)
            }
        case .object(let object):
            let pairs = object.storage.pairs
            writeContainer(open: "{", close: "}", count: pairs.count, to: &output, format: format, level: level) { index, output in
                writeJSONString(pairs[index].key, to: &output)
                output += format.key
                pairs[index].value.writeJSON(to: &output, format: format, level: level + 1)
            }
        }
    }
}

private struct JSONFormat {
    let indent: Int?
    let item: String
    let key: String
}

private func writeContainer(
    open: String, close: String, count: Int, to output: inout String, format: JSONFormat, level: Int,
    element: (Int, inout String) -> Void
) {
    output += open
    guard count > 0 else { output += close; return }
    var separator = format.item
    if let indent = format.indent {
        let inner = "\n" + String(repeating: " ", count: indent * (level + 1))
        separator += inner
        output += inner
    }
    for index in 0..<count {
        if index > 0 { output += separator }
        element(index, &output)
    }
    if let indent = format.indent { output += "\n" + String(repeating: " ", count: indent * level) }
    output += close
}

private func writeJSONString(_ string: String, to output: inout String) {
    output += "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": output += "\\\""
        case "\\": output += "\\\\"
        case "\n": output += "\\n"
        case "\r": output += "\\r"
        case "\t": output += "\\t"
        case "\u{08}": output += "\\b"
        case "\u{0C}": output += "\\f"
        case "\u{00}"..."\u{1F}": output += "\\u" + hex(scalar.value, width: 4)
        default: output.unicodeScalars.append(scalar)
        }
    }
    output += "\""
}

private func pythonJSONFloat(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
    return pythonFloatRepr(value)
}

/// Python's `repr(float)`: shortest round-trip digits, always with a `.0` or exponent.
/// Swift's `description` uses the same shortest-digits algorithm and exponent thresholds
/// (1e16 and 1e-4) and spelling (`1e+16`, `1e-05`).
func pythonFloatRepr(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    return value.description
}

func hex(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

private struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws -> JinjaValue {
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw error("unexpected trailing characters") }
        return value
    }

    private func error(_ message: String) -> JinjaError {
        JinjaError("invalid JSON at byte \(position): \(message)")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
    }

    private mutating func parseValue() throws -> JinjaValue {
        skipWhitespace()
        guard position < bytes.count else { throw error("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseContainer(close: UInt8(ascii: "}")) { parser in
            var object = JinjaObject()
            try parser.parseElements(close: UInt8(ascii: "}")) { parser in
                parser.skipWhitespace()
                guard parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: "\"") else {
                    throw parser.error("expected a string key")
                }
                let key = try parser.parseString()
                parser.skipWhitespace()
                guard parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: ":") else {
                    throw parser.error("expected ':'")
                }
                parser.position += 1
                object[key] = try parser.parseValue()
            }
            return .object(object)
        }
        case UInt8(ascii: "["): return try parseContainer(close: UInt8(ascii: "]")) { parser in
            var elements: [JinjaValue] = []
            try parser.parseElements(close: UInt8(ascii: "]")) { parser in elements.append(try parser.parseValue()) }
            return .array(elements)
        }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try parseKeyword("true", .bool(true))
        case UInt8(ascii: "f"): return try parseKeyword("false", .bool(false))
        case UInt8(ascii: "n"): return try parseKeyword("null", .none)
        default: return try parseNumber()
        }
    }

    private mutating func parseContainer(close: UInt8, _ body: (inout JSONParser) throws -> JinjaValue) throws -> JinjaValue {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaLimits.dataNesting else { throw error("nesting deeper than \(JinjaLimits.dataNesting)") }
        position += 1
        return try body(&self)
    }

    private mutating func parseElements(close: UInt8, _ element: (inout JSONParser) throws -> Void) throws {
        skipWhitespace()
        if position < bytes.count, bytes[position] == close { position += 1; return }
        while true {
            try element(&self)
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            if bytes[position] == close { position += 1; return }
            guard bytes[position] == UInt8(ascii: ",") else { throw error("expected ',' or closing bracket") }
            position += 1
        }
    }

    private mutating func parseKeyword(_ word: String, _ value: JinjaValue) throws -> JinjaValue {
        let utf8 = Array(word.utf8)
        guard bytes.count - position >= utf8.count, Array(bytes[position..<position + utf8.count]) == utf8 else {
            throw error("unexpected character")
        }
        position += utf8.count
        return value
    }

    private mutating func parseNumber() throws -> JinjaValue {
        let start = position
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        while position < bytes.count {
            let byte = bytes[position]
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                position += 1
            } else if [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"), UInt8(ascii: "-")].contains(byte) {
                isInteger = false
                position += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let value = Int(text) { return .int(value) }
        guard !text.isEmpty, text != "-", let value = Double(text) else { throw error("invalid number '\(text)'") }
        return .double(value)
    }

    private mutating func parseString() throws -> String {
        position += 1
        var scalars = String.UnicodeScalarView()
        var runStart = position
        func flushRun(_ parser: JSONParser, upTo end: Int) {
            scalars.append(contentsOf: String(decoding: parser.bytes[runStart..<end], as: UTF8.self).unicodeScalars)
        }
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                flushRun(self, upTo: position)
                position += 1
                return String(scalars)
            }
            if byte < 0x20 { throw error("control character in string") }
            guard byte == UInt8(ascii: "\\") else { position += 1; continue }
            flushRun(self, upTo: position)
            position += 1
            guard position < bytes.count else { break }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code), bytes.count - position >= 6,
                   bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
                {
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("lone surrogate \\u\(hex(code, width: 4))") }
                scalars.append(scalar)
            default: throw error("invalid escape")
            }
            runStart = position
        }
        throw error("unterminated string")
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard bytes.count - position >= 4,
              let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else { throw error("invalid \\u escape") }
        position += 4
        return value
    }
}
