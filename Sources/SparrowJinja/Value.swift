// Runtime values of the interpreter: the data model plus what only exists while rendering
// (undefined, namespaces, macros, built-in functions). Semantics follow Python/Jinja2:
// truthiness, `str()`/`repr()` spelling, equality across int/float/bool, ordering.

/// Mutable attribute bag made by `namespace(...)`; a reference type so `{% set ns.x = ... %}`
/// inside a loop is visible after it, which is the reason namespaces exist.
final class Namespace {
    var attributes: OrderedDictionary<Value>
    init(_ attributes: OrderedDictionary<Value>) { self.attributes = attributes }
}

enum BuiltinFunction: String {
    case range, namespace, dict
    case raiseException = "raise_exception"
    case strftimeNow = "strftime_now"
}

enum Value {
    /// A missing variable, attribute or item; `reason` explains it if it is misused.
    case undefined(reason: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([Value])
    case object(OrderedDictionary<Value>)
    case namespace(Namespace)
    case macro(MacroDefinition)
    case builtin(BuiltinFunction)

    init(_ value: JinjaValue, depth: Int = 0) throws {
        guard depth <= JinjaLimits.dataNesting else {
            throw JinjaError("context data nested deeper than \(JinjaLimits.dataNesting) levels")
        }
        switch value {
        case .none: self = .none
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .int(value)
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let elements): self = .array(try elements.map { try Value($0, depth: depth + 1) })
        case .object(let object): self = .object(try object.storage.mapValues { try Value($0, depth: depth + 1) })
        }
    }

    /// Converts back to plain data (for `tojson`); runtime-only values are not data.
    func toJinjaValue() throws -> JinjaValue {
        switch self {
        case .none: return .none
        case .bool(let value): return .bool(value)
        case .int(let value): return .int(value)
        case .double(let value): return .double(value)
        case .string(let value): return .string(value)
        case .array(let elements): return .array(try elements.map { try $0.toJinjaValue() })
        case .object(let object): return .object(JinjaObject(storage: try object.mapValues { try $0.toJinjaValue() }))
        case .undefined, .namespace, .macro, .builtin:
            throw JinjaError("Object of type \(typeName) is not JSON serializable")
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .builtin: return "builtin_function_or_method"
        }
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let value): return value
        case .int(let value): return value != 0
        case .double(let value): return value != 0
        case .string(let value): return !value.isEmpty
        case .array(let elements): return !elements.isEmpty
        case .object(let object): return object.count > 0
        case .namespace, .macro, .builtin: return true
        }
    }

    /// The numeric value of ints, floats and bools (Python's bool is an int).
    var number: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        case .bool(let value): return value ? 1 : 0
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .int(let value): return value
        case .bool(let value): return value ? 1 : 0
        default: return nil
        }
    }

    /// Python `str(value)`; undefined renders as the empty string.
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let value): return value
        default: return pythonRepr
        }
    }

    /// Python `repr(value)`.
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let value): return value ? "True" : "False"
        case .int(let value): return String(value)
        case .double(let value): return pythonFloatRepr(value)
        case .string(let value): return pythonStringRepr(value)
        case .array(let elements): return "[" + elements.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .object(let object):
            return "{" + object.pairs.map { pythonStringRepr($0.key) + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let namespace):
            return "<Namespace " + Value.object(namespace.attributes).pythonRepr + ">"
        case .macro(let macro): return "<Macro '\(macro.name)'>"
        case .builtin(let function): return "<built-in function \(function.rawValue)>"
        }
    }

    /// The elements a `for` loop or a sequence filter visits: list items, dict keys, the
    /// characters of a string; undefined is empty.
    func iterated() throws -> [Value] {
        switch self {
        case .undefined: return []
        case .array(let elements): return elements
        case .object(let object): return object.keys.map { .string($0) }
        case .string(let value): return value.unicodeScalars.map { .string(String($0)) }
        default: throw JinjaError("'\(typeName)' object is not iterable")
        }
    }

    /// Python `len()`.
    func length() throws -> Int {
        switch self {
        case .undefined: return 0
        case .string(let value): return value.unicodeScalars.count
        case .array(let elements): return elements.count
        case .object(let object): return object.count
        default: throw JinjaError("object of type '\(typeName)' has no len()")
        }
    }
}

func pythonStringRepr(_ string: String) -> String {
    let quote: Unicode.Scalar = string.contains("'") && !string.contains("\"") ? "\"" : "'"
    var result = String.UnicodeScalarView()
    result.append(quote)
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\\": result.append(contentsOf: "\\\\".unicodeScalars)
        case "\n": result.append(contentsOf: "\\n".unicodeScalars)
        case "\r": result.append(contentsOf: "\\r".unicodeScalars)
        case "\t": result.append(contentsOf: "\\t".unicodeScalars)
        case quote: result.append("\\"); result.append(quote)
        case "\u{00}"..."\u{1F}", "\u{7F}"..."\u{A0}":
            result.append(contentsOf: ("\\x" + hex(scalar.value, width: 2)).unicodeScalars)
        default: result.append(scalar)
        }
    }
    result.append(quote)
    return String(result)
}

// MARK: Equality and ordering

extension Value {
    /// Python `==`: numbers compare by value across int/float/bool; containers deeply;
    /// undefined equals only undefined.
    func isEqual(to other: Value) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isEqual(to: $1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.pairs.allSatisfy { pair in b[pair.key].map { pair.value.isEqual(to: $0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        default:
            if let a = integer, let b = other.integer { return a == b }
            if let a = number, let b = other.number { return a == b }
            return false
        }
    }

    /// Python ordering for `<`, `sort`, `min`/`max`: numbers, strings (by code point),
    /// lists (lexicographically).
    func compare(to other: Value, operator op: String = "<") throws -> Int {
        switch (self, other) {
        case (.string(let a), .string(let b)):
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars, by: { $0.value < $1.value }) ? -1
                : a.unicodeScalars.elementsEqual(b.unicodeScalars) ? 0 : 1
        case (.array(let a), .array(let b)):
            for (x, y) in zip(a, b) where !x.isEqual(to: y) { return try x.compare(to: y, operator: op) }
            return a.count < b.count ? -1 : a.count == b.count ? 0 : 1
        default:
            if let a = integer, let b = other.integer { return a < b ? -1 : a == b ? 0 : 1 }
            if let a = number, let b = other.number { return a < b ? -1 : a == b ? 0 : 1 }
            if case .undefined(let reason) = self { throw JinjaError(reason) }
            if case .undefined(let reason) = other { throw JinjaError(reason) }
            throw JinjaError("'\(op)' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }
}
