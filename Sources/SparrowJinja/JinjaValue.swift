/// A value passed into a template (the render context) — the JSON-like data model of chat
/// templates.
///
/// Objects keep their keys in insertion order, like Python dicts: `tojson`, `items()` and
/// iteration over an object must reproduce the order in which the caller built it (tool
/// schemas, for instance), or the rendered prompt differs from the reference renderers.
public indirect enum JinjaValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    case object(JinjaObject)
}

/// An insertion-ordered string-keyed dictionary of `JinjaValue`s.
///
/// Equality ignores key order, as Python dict equality does. Build it from a dictionary
/// literal (order kept), from key/value pairs (order kept), or from a Swift `Dictionary`
/// (which has no order: keys are then sorted so the result is deterministic).
public struct JinjaObject: Sendable, Equatable, ExpressibleByDictionaryLiteral, Sequence {
    var storage: OrderedDictionary<JinjaValue>

    public init() { storage = OrderedDictionary() }

    init(storage: OrderedDictionary<JinjaValue>) { self.storage = storage }

    public init(_ pairs: [(String, JinjaValue)]) {
        storage = OrderedDictionary()
        for (key, value) in pairs { storage[key] = value }
    }

    public init(_ dictionary: [String: JinjaValue]) {
        self.init(dictionary.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    public init(dictionaryLiteral elements: (String, JinjaValue)...) {
        self.init(elements)
    }

    public var keys: [String] { storage.keys }
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.count == 0 }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set { storage[key] = newValue }
    }

    public func makeIterator() -> AnyIterator<(key: String, value: JinjaValue)> {
        var iterator = storage.pairs.makeIterator()
        return AnyIterator { iterator.next() }
    }
}

/// Minimal insertion-ordered dictionary shared by the public object type and the
/// interpreter's runtime values. Assigning an existing key keeps its original position.
struct OrderedDictionary<Value> {
    private(set) var keys: [String] = []
    private(set) var values: [String: Value] = [:]

    var count: Int { keys.count }

    subscript(key: String) -> Value? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var pairs: [(key: String, value: Value)] { keys.map { ($0, values[$0]!) } }

    func mapValues<T>(_ transform: (Value) throws -> T) rethrows -> OrderedDictionary<T> {
        var result = OrderedDictionary<T>()
        for key in keys { result[key] = try transform(values[key]!) }
        return result
    }
}

extension OrderedDictionary: Equatable where Value: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool { lhs.values == rhs.values }
}

extension OrderedDictionary: Sendable where Value: Sendable {}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) {
        self = .object(JinjaObject(elements))
    }
    public init(nilLiteral: ()) { self = .none }
}
