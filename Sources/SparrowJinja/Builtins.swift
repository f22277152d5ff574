// Global functions, filters, tests and the Python str/dict methods that chat templates
// call. Each follows the Jinja2 (or Python) built-in of the same name.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Renderer {
    // MARK: Global functions

    func callBuiltin(_ function: BuiltinFunction, _ arguments: Arguments) throws -> Value {
        switch function {
        case .range:
            guard arguments.keyword.isEmpty, (1...3).contains(arguments.positional.count) else {
                throw JinjaError("range() expects 1 to 3 positional integer arguments")
            }
            let integers = try arguments.positional.map { value -> Int in
                guard let integer = value.integer else { throw JinjaError("range() arguments must be integers, not \(value.typeName)") }
                return integer
            }
            let (start, stop) = integers.count == 1 ? (0, integers[0]) : (integers[0], integers[1])
            let step = integers.count == 3 ? integers[2] : 1
            guard step != 0 else { throw JinjaError("range() step must not be zero") }
            let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            guard count <= JinjaLimits.sequenceLength else { throw JinjaError("range() of \(count) elements is too large") }
            return .array(stride(from: start, to: stop, by: step).map { .int($0) })
        case .namespace, .dict:
            var attributes = OrderedDictionary<Value>()
            for value in arguments.positional {
                guard case .object(let object) = value else {
                    throw JinjaError("\(function.rawValue)() positional argument must be a mapping, not \(value.typeName)")
                }
                for (key, value) in object.pairs { attributes[key] = value }
            }
            for (key, value) in arguments.keyword { attributes[key] = value }
            return function == .namespace ? .namespace(Namespace(attributes)) : .object(attributes)
        case .raiseException:
            throw JinjaError.raised(arguments.positional.first?.pythonString ?? "raise_exception() called")
        case .strftimeNow:
            guard case .string(let format)? = try arguments.bind(["format"], to: "strftime_now")[0] else {
                throw JinjaError("strftime_now() expects a format string")
            }
            return .string(formatCurrentTime(format))
        }
    }

    private func formatCurrentTime(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 256)
        let length = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Methods

    /// Python methods of str and dict values (`s.strip()`, `d.items()`); nil when `name` is
    /// not a method of `receiver`, so the caller falls back to attribute lookup.
    func callMethod(_ name: String, on receiver: Value, _ arguments: Arguments) throws -> Value? {
        switch receiver {
        case .string(let string): return try callStringMethod(name, on: string, arguments)
        case .object(let object):
            switch name {
            case "items":
                _ = try arguments.bind([], to: name)
                return .array(object.pairs.map { .array([.string($0.key), $0.value]) })
            case "keys":
                _ = try arguments.bind([], to: name)
                return .array(object.keys.map { .string($0) })
            case "values":
                _ = try arguments.bind([], to: name)
                return .array(object.pairs.map(\.value))
            case "get":
                let bound = try arguments.bind(["key", "default"], to: name)
                guard case .string(let key)? = bound[0] else { return bound[1] ?? Value.none }
                return object[key] ?? bound[1] ?? Value.none
            default: return nil
            }
        default: return nil
        }
    }

    private func callStringMethod(_ name: String, on string: String, _ arguments: Arguments) throws -> Value? {
        func stringArgument(_ value: Value?, _ parameter: String) throws -> String? {
            switch value {
            case nil, .some(.none): return nil
            case .string(let text)?: return text
            case let other?: throw JinjaError("\(name)() argument '\(parameter)' must be str or None, not \(other.typeName)")
            }
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try stringArgument(try arguments.bind(["chars"], to: name)[0], "chars")
            return .string(pythonStrip(string, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "startswith", "endswith":
            let bound = try arguments.bind(["prefix"], to: name)
            let candidates: [Value]
            switch bound[0] {
            case .string?: candidates = [bound[0]!]
            case .array(let elements)?: candidates = elements
            default: throw JinjaError("\(name)() argument must be str or a tuple of str")
            }
            let scalars = Array(string.unicodeScalars)
            return .bool(try candidates.contains { candidate in
                guard case .string(let affix) = candidate else { throw JinjaError("\(name)() tuple items must be str") }
                let affixScalars = Array(affix.unicodeScalars)
                return name == "startswith" ? scalars.starts(with: affixScalars) : scalars.reversed().starts(with: affixScalars.reversed())
            })
        case "split":
            let bound = try arguments.bind(["sep", "maxsplit"], to: name)
            let separator = try stringArgument(bound[0], "sep")
            if separator == "" { throw JinjaError("split(): empty separator") }
            let limit = bound[1]?.integer ?? -1
            return .array(pythonSplit(string, separator: separator, maxSplit: limit).map { .string($0) })
        case "upper", "lower", "title", "capitalize":
            _ = try arguments.bind([], to: name)
            switch name {
            case "upper": return .string(string.uppercased())
            case "lower": return .string(string.lowercased())
            case "title": return .string(pythonTitle(string))
            default: return .string(pythonCapitalize(string))
            }
        case "replace":
            let bound = try arguments.bind(["old", "new", "count"], to: name)
            guard case .string(let old)? = bound[0], case .string(let new)? = bound[1] else {
                throw JinjaError("replace() expects two string arguments")
            }
            return .string(pythonReplace(string, old, new, count: bound[2]?.integer ?? -1))
        case "find":
            guard case .string(let needle)? = try arguments.bind(["sub"], to: name)[0] else {
                throw JinjaError("find() expects a string argument")
            }
            return .int(Array(string.unicodeScalars).rangeOfScalars(Array(needle.unicodeScalars))?.lowerBound ?? -1)
        case "join":
            let items = try (try arguments.bind(["iterable"], to: name)[0] ?? .array([])).iterated()
            return .string(try items.map { item in
                guard case .string(let text) = item else { throw JinjaError("join() expects str items, found \(item.typeName)") }
                return text
            }.joined(separator: string))
        default:
            return nil
        }
    }

    // MARK: Filters

    func applyFilter(_ name: String, to value: Value, _ arguments: Arguments) throws -> Value {
        switch name {
        case "trim":
            let chars = try arguments.bind(["chars"], to: name)[0]
            return .string(pythonStrip(value.pythonString, chars: chars.map(\.pythonString), leading: true, trailing: true))
        case "upper": return .string(value.pythonString.uppercased())
        case "lower": return .string(value.pythonString.lowercased())
        case "capitalize": return .string(pythonCapitalize(value.pythonString))
        case "title": return .string(jinjaTitle(value.pythonString))
        case "string": return .string(value.pythonString)
        case "safe": return value
        case "escape", "e": return .string(htmlEscape(value.pythonString))
        case "length", "count": return .int(try value.length())
        case "tojson":
            let bound = try arguments.bind(["ensure_ascii", "indent", "separators", "sort_keys"], to: name)
            guard bound[0] == nil || bound[0]?.isTruthy == false else {
                throw JinjaError("tojson(): ensure_ascii=True is not supported")
            }
            var separators: (item: String, key: String)?
            if let given = bound[2], !given.isEqual(to: .none) {
                guard case .array(let pair) = given, pair.count == 2, case .string(let item) = pair[0], case .string(let key) = pair[1] else {
                    throw JinjaError("tojson(): separators must be a pair of strings")
                }
                separators = (item, key)
            }
            var data = try value.toJinjaValue()
            if bound[3]?.isTruthy == true { data = sortingKeys(data) }
            return .string(data.jsonString(indent: bound[1]?.integer, separators: separators))
        case "default", "d":
            let bound = try arguments.bind(["default_value", "boolean"], to: name)
            let useDefault = bound[1]?.isTruthy == true ? !value.isTruthy : value.isUndefined
            return useDefault ? bound[0] ?? .string("") : value
        case "join":
            let bound = try arguments.bind(["d", "attribute"], to: name)
            var items = try value.iterated()
            if let attributeName = bound[1] { items = try items.map { try attribute(attributeName.pythonString, of: $0) } }
            return .string(items.map(\.pythonString).joined(separator: bound[0]?.pythonString ?? ""))
        case "first":
            return try value.iterated().first ?? .undefined(reason: "first() of an empty sequence")
        case "last":
            return try value.iterated().last ?? .undefined(reason: "last() of an empty sequence")
        case "list": return .array(try value.iterated())
        case "reverse":
            if case .string(let string) = value { return .string(String(String.UnicodeScalarView(string.unicodeScalars.reversed()))) }
            return .array(try value.iterated().reversed())
        case "items":
            switch value {
            case .undefined: return .array([])
            case .object(let object): return .array(object.pairs.map { .array([.string($0.key), $0.value]) })
            default: throw JinjaError("items filter expects a mapping, got \(value.typeName)")
            }
        case "dictsort":
            guard case .object(let object) = value else { throw JinjaError("dictsort filter expects a mapping") }
            let bound = try arguments.bind(["case_sensitive", "by", "reverse"], to: name)
            let byValue = bound[1]?.pythonString == "value"
            let pairs = try sorted(object.pairs.map { Value.array([.string($0.key), $0.value]) },
                                   caseSensitive: bound[0]?.isTruthy == true, reverse: bound[2]?.isTruthy == true) { pair in
                guard case .array(let elements) = pair else { return pair }
                return elements[byValue ? 1 : 0]
            }
            return .array(pairs)
        case "sort":
            let bound = try arguments.bind(["reverse", "case_sensitive", "attribute"], to: name)
            return .array(try sorted(try value.iterated(), caseSensitive: bound[1]?.isTruthy == true, reverse: bound[0]?.isTruthy == true) { item in
                try bound[2].map { try attributePath($0.pythonString, of: item) } ?? item
            })
        case "unique":
            let bound = try arguments.bind(["case_sensitive", "attribute"], to: name)
            var seen: [Value] = []
            var result: [Value] = []
            for item in try value.iterated() {
                let key = comparisonKey(try bound[1].map { try attributePath($0.pythonString, of: item) } ?? item,
                                        caseSensitive: bound[0]?.isTruthy == true)
                if !seen.contains(where: { $0.isEqual(to: key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .array(result)
        case "min", "max":
            let bound = try arguments.bind(["case_sensitive", "attribute"], to: name)
            let items = try sorted(try value.iterated(), caseSensitive: bound[0]?.isTruthy == true, reverse: false) { item in
                try bound[1].map { try attributePath($0.pythonString, of: item) } ?? item
            }
            return (name == "min" ? items.first : items.last) ?? .undefined(reason: "\(name)() of an empty sequence")
        case "sum":
            let bound = try arguments.bind(["attribute", "start"], to: name)
            var total = bound[1] ?? .int(0)
            for item in try value.iterated() {
                total = try binaryAdd(total, try bound[0].map { try attributePath($0.pythonString, of: item) } ?? item)
            }
            return total
        case "map":
            return .array(try value.iterated().map { item in
                if let attributeName = arguments.keyword.first(where: { $0.name == "attribute" })?.value {
                    let found = try attributePath(attributeName.pythonString, of: item)
                    if found.isUndefined, let fallback = arguments.keyword.first(where: { $0.name == "default" })?.value { return fallback }
                    return found
                }
                guard case .string(let filterName)? = arguments.positional.first else {
                    throw JinjaError("map() needs a filter name or attribute=")
                }
                return try applyFilter(filterName, to: item, Arguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword))
            })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            var remaining = arguments.positional
            let attributeName = byAttribute ? remaining.isEmpty ? nil : remaining.removeFirst().pythonString : nil
            if byAttribute, attributeName == nil { throw JinjaError("\(name)() needs an attribute name") }
            let testName = remaining.isEmpty ? nil : remaining.removeFirst().pythonString
            let testArguments = Arguments(positional: remaining, keyword: arguments.keyword)
            let wanted = name.hasPrefix("select")
            return .array(try value.iterated().filter { item in
                let subject = try attributeName.map { try attributePath($0, of: item) } ?? item
                let passes = try testName.map { try applyTest($0, to: subject, testArguments) } ?? subject.isTruthy
                return passes == wanted
            })
        case "replace":
            let bound = try arguments.bind(["old", "new", "count"], to: name)
            guard let old = bound[0], let new = bound[1] else { throw JinjaError("replace() needs old and new strings") }
            return .string(pythonReplace(value.pythonString, old.pythonString, new.pythonString, count: bound[2]?.integer ?? -1))
        case "indent":
            let bound = try arguments.bind(["width", "first", "blank"], to: name)
            let indentation: String
            if case .string(let text)? = bound[0] { indentation = text } else { indentation = String(repeating: " ", count: bound[0]?.integer ?? 4) }
            return .string(jinjaIndent(value.pythonString, indentation: indentation,
                                       first: bound[1]?.isTruthy == true, blank: bound[2]?.isTruthy == true))
        case "int":
            let bound = try arguments.bind(["default", "base"], to: name)
            return toInteger(value, base: bound[1]?.integer ?? 10) ?? bound[0] ?? .int(0)
        case "float":
            let bound = try arguments.bind(["default"], to: name)
            return toDouble(value) ?? bound[0] ?? .double(0)
        case "abs":
            switch value {
            case .int(let integer):
                guard integer != .min else { throw JinjaError("integer overflow in abs") }
                return .int(Swift.abs(integer))
            case .double(let double): return .double(Swift.abs(double))
            case .bool(let bool): return .int(bool ? 1 : 0)
            default: throw JinjaError("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            let bound = try arguments.bind(["precision", "method"], to: name)
            guard let number = value.number else { throw JinjaError("round filter expects a number, got \(value.typeName)") }
            let scale = pow(10, Double(bound[0]?.integer ?? 0))
            let rule: FloatingPointRoundingRule
            switch bound[1]?.pythonString ?? "common" {
            case "common": rule = .toNearestOrEven  // Python's round()
            case "ceil": rule = .up
            case "floor": rule = .down
            default: throw JinjaError("round() method must be 'common', 'ceil' or 'floor'")
            }
            return .double((number * scale).rounded(rule) / scale)
        default:
            throw JinjaError("unknown filter '\(name)'")
        }
    }

    private func binaryAdd(_ left: Value, _ right: Value) throws -> Value {
        switch (left, right) {
        case (.int(let a), .int(let b)):
            let (sum, overflow) = a.addingReportingOverflow(b)
            guard !overflow else { throw JinjaError("integer overflow in sum") }
            return .int(sum)
        default:
            guard let a = left.number, let b = right.number else {
                throw JinjaError("unsupported operand type(s) for +: '\(left.typeName)' and '\(right.typeName)'")
            }
            return .double(a + b)
        }
    }

    /// Jinja2's attribute argument of filters: dotted path, integer parts index lists.
    private func attributePath(_ path: String, of value: Value) throws -> Value {
        var current = value
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            if let index = Int(part), case .array(let elements) = current {
                current = elements.indices.contains(index) ? elements[index] : .undefined(reason: "no element \(index)")
            } else {
                current = try attribute(String(part), of: current)
            }
        }
        return current
    }

    private func comparisonKey(_ value: Value, caseSensitive: Bool) -> Value {
        if !caseSensitive, case .string(let string) = value { return .string(string.lowercased()) }
        return value
    }

    private func sorted(_ items: [Value], caseSensitive: Bool, reverse: Bool, key: (Value) throws -> Value) throws -> [Value] {
        let keyed = try items.map { (key: comparisonKey(try key($0), caseSensitive: caseSensitive), item: $0) }
        let ordered = try keyed.sorted { a, b in
            try (reverse ? b.key.compare(to: a.key) : a.key.compare(to: b.key)) < 0
        }
        return ordered.map(\.item)
    }

    private func sortingKeys(_ value: JinjaValue) -> JinjaValue {
        switch value {
        case .array(let elements): return .array(elements.map(sortingKeys))
        case .object(let object):
            return .object(JinjaObject(object.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) { $0.value < $1.value } }
                .map { ($0, sortingKeys(object[$0]!)) }))
        default: return value
        }
    }

    private func toInteger(_ value: Value, base: Int) -> Value? {
        switch value {
        case .int, .bool: return value.integer.map { .int($0) }
        case .double(let double):
            guard double.isFinite, Swift.abs(double) < 9.2e18 else { return nil }
            return .int(Int(double))
        case .string(let string):
            let trimmed = pythonStrip(string, chars: nil, leading: true, trailing: true).replacingUnderscores()
            if let integer = Int(trimmed, radix: base) { return .int(integer) }
            if base == 10, let double = Double(trimmed) { return toInteger(.double(double), base: base) }
            return nil
        default: return nil
        }
    }

    private func toDouble(_ value: Value) -> Value? {
        switch value {
        case .int, .bool, .double: return value.number.map { .double($0) }
        case .string(let string):
            return Double(pythonStrip(string, chars: nil, leading: true, trailing: true)).map { .double($0) }
        default: return nil
        }
    }

    // MARK: Tests

    func applyTest(_ name: String, to value: Value, _ arguments: Arguments) throws -> Bool {
        func operand() throws -> Value {
            guard let operand = try arguments.bind(["other"], to: name)[0] else { throw JinjaError("test '\(name)' needs an argument") }
            return operand
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.number != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .object = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .undefined, .string, .array, .object: return true
            default: return false
            }
        case "callable":
            switch value {
            case .macro, .builtin: return true
            default: return false
            }
        case "lower", "upper":
            guard case .string(let string) = value else { return false }
            let hasCased = string.unicodeScalars.contains { $0.properties.changesWhenCaseMapped }
            return hasCased && string == (name == "lower" ? string.lowercased() : string.uppercased())
        case "even", "odd":
            guard let integer = value.integer else { throw JinjaError("test '\(name)' expects an integer, got \(value.typeName)") }
            return (integer % 2 == 0) == (name == "even")
        case "divisibleby":
            guard let integer = value.integer, let divisor = try operand().integer, divisor != 0 else {
                throw JinjaError("divisibleby expects non-zero integers")
            }
            return integer % divisor == 0
        case "eq", "equalto", "==": return value.isEqual(to: try operand())
        case "ne", "!=": return !value.isEqual(to: try operand())
        case "lt", "<": return try value.compare(to: try operand()) < 0
        case "le", "<=": return try value.compare(to: try operand()) <= 0
        case "gt", ">": return try value.compare(to: try operand()) > 0
        case "ge", ">=": return try value.compare(to: try operand()) >= 0
        case "in": return try contains(try operand(), value)
        default: throw JinjaError("unknown test '\(name)'")
        }
    }
}

// MARK: Python string semantics, on Unicode scalars (Python's code points)

extension Array where Element == Unicode.Scalar {
    func rangeOfScalars(_ needle: [Unicode.Scalar], from start: Int = 0) -> Range<Int>? {
        guard !needle.isEmpty else { return start..<start }
        guard count >= needle.count else { return nil }
        var index = start
        while index <= count - needle.count {
            if self[index] == needle[0], self[index..<index + needle.count].elementsEqual(needle) { return index..<index + needle.count }
            index += 1
        }
        return nil
    }
}

func pythonStrip(_ string: String, chars: String?, leading: Bool, trailing: Bool) -> String {
    let set = chars.map { Set($0.unicodeScalars) }
    let strip: (Unicode.Scalar) -> Bool = { set?.contains($0) ?? isPythonWhitespace($0) }
    let scalars = Array(string.unicodeScalars)
    var start = 0, end = scalars.count
    if leading { while start < end, strip(scalars[start]) { start += 1 } }
    if trailing { while end > start, strip(scalars[end - 1]) { end -= 1 } }
    return String(String.UnicodeScalarView(scalars[start..<end]))
}

func pythonSplit(_ string: String, separator: String?, maxSplit: Int) -> [String] {
    let scalars = Array(string.unicodeScalars)
    func text(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }
    var parts: [String] = []
    if let separator {
        let needle = Array(separator.unicodeScalars)
        var start = 0
        while maxSplit < 0 || parts.count < maxSplit, let found = scalars.rangeOfScalars(needle, from: start) {
            parts.append(text(start..<found.lowerBound))
            start = found.upperBound
        }
        parts.append(text(start..<scalars.count))
        return parts
    }
    // No separator: split on whitespace runs, dropping empty strings.
    var index = 0
    while true {
        while index < scalars.count, isPythonWhitespace(scalars[index]) { index += 1 }
        guard index < scalars.count else { break }
        if maxSplit >= 0, parts.count == maxSplit {
            var end = scalars.count
            while end > index, isPythonWhitespace(scalars[end - 1]) { end -= 1 }
            parts.append(text(index..<end))
            break
        }
        let start = index
        while index < scalars.count, !isPythonWhitespace(scalars[index]) { index += 1 }
        parts.append(text(start..<index))
    }
    return parts
}

func pythonReplace(_ string: String, _ old: String, _ new: String, count: Int) -> String {
    let scalars = Array(string.unicodeScalars)
    let needle = Array(old.unicodeScalars)
    var result = String.UnicodeScalarView()
    var start = 0, replaced = 0
    if needle.isEmpty {
        // Python inserts `new` around every character.
        for scalar in scalars {
            if count < 0 || replaced < count { result.append(contentsOf: new.unicodeScalars); replaced += 1 }
            result.append(scalar)
        }
        if count < 0 || replaced < count { result.append(contentsOf: new.unicodeScalars) }
        return String(result)
    }
    while count < 0 || replaced < count, let found = scalars.rangeOfScalars(needle, from: start) {
        result.append(contentsOf: scalars[start..<found.lowerBound])
        result.append(contentsOf: new.unicodeScalars)
        start = found.upperBound
        replaced += 1
    }
    result.append(contentsOf: scalars[start...])
    return String(result)
}

func pythonCapitalize(_ string: String) -> String {
    guard let first = string.unicodeScalars.first else { return string }
    return String(first).uppercased() + String(string.unicodeScalars.dropFirst()).lowercased()
}

/// Python `str.title()`: a letter after a non-letter starts a word.
func pythonTitle(_ string: String) -> String {
    var result = ""
    var previousIsLetter = false
    for scalar in string.unicodeScalars {
        let isLetter = scalar.properties.isAlphabetic
        result += previousIsLetter ? String(scalar).lowercased() : String(scalar).uppercased()
        previousIsLetter = isLetter
    }
    return result
}

/// Jinja2's `title` filter: words start after whitespace, `-`, or an opening bracket.
func jinjaTitle(_ string: String) -> String {
    var result = ""
    var atWordStart = true
    for scalar in string.unicodeScalars {
        let isBoundary = isPythonWhitespace(scalar) || "-({[<".unicodeScalars.contains(scalar)
        if isBoundary {
            result.unicodeScalars.append(scalar)
        } else {
            result += atWordStart ? String(scalar).uppercased() : String(scalar).lowercased()
        }
        atWordStart = isBoundary
    }
    return result
}

/// Jinja2's `indent`: indents every line but the first (unless `first`), skipping blank
/// lines (unless `blank`).
func jinjaIndent(_ string: String, indentation: String, first: Bool, blank: Bool) -> String {
    let lines = pythonSplitLines(string + "\n")
    var result = lines.first ?? ""
    for line in lines.dropFirst() {
        result += "\n" + (line.isEmpty && !blank ? "" : indentation) + line
    }
    return first ? indentation + result : result
}

private func pythonSplitLines(_ string: String) -> [String] {
    var lines: [String] = []
    var current = String.UnicodeScalarView()
    var previousWasCR = false
    for scalar in string.unicodeScalars {
        if scalar == "\n", previousWasCR { previousWasCR = false; continue }
        previousWasCR = scalar == "\r"
        if ["\n", "\r", "\u{0B}", "\u{0C}", "\u{1C}", "\u{1D}", "\u{1E}", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar) {
            lines.append(String(current))
            current = String.UnicodeScalarView()
        } else {
            current.append(scalar)
        }
    }
    if !current.isEmpty { lines.append(String(current)) }
    return lines
}

func htmlEscape(_ string: String) -> String {
    var result = ""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"": result += "&#34;"
        case "'": result += "&#39;"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result
}
