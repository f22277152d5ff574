#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Tree-walking evaluator. One Renderer lives for one `render` call.

/// A variable frame. `for` iterations and macro calls open a new frame, so a `set` inside
/// them is invisible outside, as in Jinja2; `if` blocks do not.
final class Scope {
    var variables: [String: Value] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var frame: Scope? = self
        while let current = frame {
            if let value = current.variables[name] { return value }
            frame = current.parent
        }
        return nil
    }
}

/// Evaluated call arguments: positional values and `name=value` keywords.
struct Arguments {
    var positional: [Value] = []
    var keyword: [(name: String, value: Value)] = []

    /// Matches arguments to a callee's parameter names, Python-style; a parameter that was
    /// not passed is nil.
    func bind(_ parameters: [String], to callee: String) throws -> [Value?] {
        guard positional.count <= parameters.count else {
            throw JinjaError("\(callee)() takes at most \(parameters.count) argument(s), \(positional.count) given")
        }
        var bound: [Value?] = parameters.indices.map { $0 < positional.count ? positional[$0] : nil }
        for (name, value) in keyword {
            guard let index = parameters.firstIndex(of: name) else {
                throw JinjaError("\(callee)() got an unexpected keyword argument '\(name)'")
            }
            guard bound[index] == nil else { throw JinjaError("\(callee)() got multiple values for argument '\(name)'") }
            bound[index] = value
        }
        return bound
    }
}

private enum Flow { case normal, breakLoop, continueLoop }

final class Renderer {
    private let root: Scope
    private var scope: Scope
    private var output = ""
    private var macroDepth = 0

    init(context: [String: JinjaValue]) throws {
        root = Scope(parent: nil)
        for function in [BuiltinFunction.range, .namespace, .dict, .raiseException, .strftimeNow] {
            root.variables[function.rawValue] = .builtin(function)
        }
        for (name, value) in context { root.variables[name] = try Value(value) }
        scope = root
    }

    func render(_ nodes: [Node]) throws -> String {
        _ = try execute(nodes)
        return output
    }

    // MARK: Statements

    private func execute(_ nodes: [Node]) throws -> Flow {
        for node in nodes {
            let flow = try execute(node)
            if flow != .normal { return flow }
        }
        return .normal
    }

    /// Attaches the statement's line to errors that do not have one yet.
    private func at<T>(_ line: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as JinjaError where error.line == nil && !error.isRaisedByTemplate {
            throw JinjaError(error.message, line: line)
        }
    }

    private func execute(_ node: Node) throws -> Flow {
        switch node {
        case .text(let text):
            output += text
        case .output(let expression, let line):
            output += try at(line) { try evaluate(expression).pythonString }
        case .conditional(let branches, let otherwise, let line):
            for branch in branches where try at(line, { try evaluate(branch.condition).isTruthy }) {
                return try execute(branch.body)
            }
            return try execute(otherwise)
        case .loop(let targets, let iterable, let filter, let body, let otherwise, let line):
            return try executeLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line)
        case .assign(let target, let expression, let line):
            try at(line) { try assign(try evaluate(expression), to: target) }
        case .assignBlock(let target, let body, let line):
            let captured = try capturingOutput { _ = try execute(body) }
            try at(line) { try assign(.string(captured), to: target) }
        case .macro(let definition, _):
            scope.variables[definition.name] = .macro(definition)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func executeLoop(
        targets: [String], iterable: Expression, filter: Expression?, body: [Node], otherwise: [Node], line: Int
    ) throws -> Flow {
        let outer = scope
        defer { scope = outer }
        var items = try at(line) { try evaluate(iterable).iterated() }
        if let filter {
            items = try items.filter { item in
                scope = Scope(parent: outer)
                try at(line) { try bind(item, to: targets) }
                return try at(line) { try evaluate(filter).isTruthy }
            }
            scope = outer
        }
        guard !items.isEmpty else { return try execute(otherwise) }
        for (index, item) in items.enumerated() {
            scope = Scope(parent: outer)
            try at(line) { try bind(item, to: targets) }
            var loop = OrderedDictionary<Value>()
            loop["index"] = .int(index + 1)
            loop["index0"] = .int(index)
            loop["revindex"] = .int(items.count - index)
            loop["revindex0"] = .int(items.count - index - 1)
            loop["first"] = .bool(index == 0)
            loop["last"] = .bool(index == items.count - 1)
            loop["length"] = .int(items.count)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            if index > 0 { loop["previtem"] = items[index - 1] }
            if index + 1 < items.count { loop["nextitem"] = items[index + 1] }
            scope.variables["loop"] = .object(loop)
            if try execute(body) == .breakLoop { break }
        }
        return .normal
    }

    private func bind(_ value: Value, to names: [String]) throws {
        guard names.count > 1 else {
            scope.variables[names[0]] = value
            return
        }
        let elements = try value.iterated()
        guard elements.count == names.count else {
            throw JinjaError(elements.count > names.count
                ? "too many values to unpack (expected \(names.count))"
                : "not enough values to unpack (expected \(names.count), got \(elements.count))")
        }
        for (name, element) in zip(names, elements) { scope.variables[name] = element }
    }

    private func assign(_ value: Value, to target: AssignmentTarget) throws {
        switch target {
        case .names(let names):
            try bind(value, to: names)
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace) = scope.lookup(name) else {
                throw JinjaError("cannot assign attribute '\(attribute)' on '\(name)', which is not a namespace")
            }
            namespace.attributes[attribute] = value
        }
    }

    private func capturingOutput(_ body: () throws -> Void) throws -> String {
        let saved = output
        output = ""
        defer { output = saved }
        try body()
        return output
    }

    // MARK: Expressions

    func evaluate(_ expression: Expression) throws -> Value {
        switch expression {
        case .literal(let value):
            return try Value(value)
        case .name(let name):
            return scope.lookup(name) ?? .undefined(reason: "'\(name)' is undefined")
        case .list(let elements):
            return .array(try elements.map(evaluate))
        case .dictionary(let pairs):
            var object = OrderedDictionary<Value>()
            for pair in pairs {
                guard case .string(let key) = try evaluate(pair.key) else {
                    throw JinjaError("only string keys are supported in dict literals")
                }
                object[key] = try evaluate(pair.value)
            }
            return .object(object)
        case .attribute(let base, let name):
            return try attribute(name, of: try evaluate(base))
        case .item(let base, let key):
            return try item(try evaluate(key), of: try evaluate(base))
        case .slice(let base, let start, let stop, let step):
            return try slice(try evaluate(base), start: start.map(evaluate), stop: stop.map(evaluate), step: step.map(evaluate))
        case .call(let callee, let arguments):
            if case .attribute(let receiverExpression, let name) = callee {
                let receiver = try evaluate(receiverExpression)
                let evaluated = try evaluate(arguments)
                if let result = try callMethod(name, on: receiver, evaluated) { return result }
                return try call(try attribute(name, of: receiver), evaluated)
            }
            return try call(try evaluate(callee), try evaluate(arguments))
        case .filter(let base, let name, let arguments):
            return try applyFilter(name, to: try evaluate(base), try evaluate(arguments))
        case .test(let base, let name, let arguments, let negated):
            return .bool(try applyTest(name, to: try evaluate(base), try evaluate(arguments)) != negated)
        case .negate(let operand):
            switch try evaluate(operand) {
            case .int(let value):
                guard value != .min else { throw JinjaError("integer overflow") }
                return .int(-value)
            case .double(let value): return .double(-value)
            case .bool(let value): return .int(value ? -1 : 0)
            case .undefined(let reason): throw JinjaError(reason)
            case let other: throw JinjaError("bad operand type for unary -: '\(other.typeName)'")
            }
        case .unaryPlus(let operand):
            let value = try evaluate(operand)
            if case .undefined(let reason) = value { throw JinjaError(reason) }
            guard value.number != nil else { throw JinjaError("bad operand type for unary +: '\(value.typeName)'") }
            return value
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .and(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? try evaluate(right) : value
        case .or(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? value : try evaluate(right)
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left), try evaluate(right))
        case .comparison(let first, let operations):
            var left = try evaluate(first)
            for (op, rightExpression) in operations {
                let right = try evaluate(rightExpression)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map(evaluate)
                ?? .undefined(reason: "the inline if-expression evaluated to false and no else section was defined")
        }
    }

    private func evaluate(_ arguments: [Argument]) throws -> Arguments {
        var result = Arguments()
        for argument in arguments {
            let value = try evaluate(argument.value)
            if let name = argument.name { result.keyword.append((name, value)) } else { result.positional.append(value) }
        }
        return result
    }

    func attribute(_ name: String, of value: Value) throws -> Value {
        switch value {
        case .undefined(let reason): throw JinjaError(reason)
        case .object(let object):
            return object[name] ?? .undefined(reason: "'dict object' has no attribute '\(name)'")
        case .namespace(let namespace):
            return namespace.attributes[name] ?? .undefined(reason: "'Namespace' object has no attribute '\(name)'")
        default:
            return .undefined(reason: "'\(value.typeName) object' has no attribute '\(name)'")
        }
    }

    private func item(_ key: Value, of value: Value) throws -> Value {
        switch (value, key) {
        case (.undefined(let reason), _):
            throw JinjaError(reason)
        case (.object, .string(let name)), (.namespace, .string(let name)):
            return try attribute(name, of: value)
        case (.array(let elements), _):
            if let index = key.integer, let resolved = pythonIndex(index, count: elements.count) { return elements[resolved] }
        case (.string(let string), _):
            let scalars = Array(string.unicodeScalars)
            if let index = key.integer, let resolved = pythonIndex(index, count: scalars.count) { return .string(String(scalars[resolved])) }
        default:
            break
        }
        return .undefined(reason: "'\(value.typeName) object' has no element \(key.pythonRepr)")
    }

    private func pythonIndex(_ index: Int, count: Int) -> Int? {
        let resolved = index < 0 ? index + count : index
        return (0..<count).contains(resolved) ? resolved : nil
    }

    private func slice(_ value: Value, start: Value?, stop: Value?, step: Value?) throws -> Value {
        func bound(_ value: Value?) throws -> Int? {
            guard let value, !(value.isUndefined), !(value.isEqual(to: .none)) else { return nil }
            guard let integer = value.integer else { throw JinjaError("slice indices must be integers or None") }
            return integer
        }
        let step = try bound(step) ?? 1
        guard step != 0 else { throw JinjaError("slice step cannot be zero") }
        func indices(count: Int) throws -> [Int] {
            func clamp(_ index: Int?, default defaultValue: Int) -> Int {
                guard var index else { return defaultValue }
                if index < 0 { index += count }
                return step > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            let from = clamp(try bound(start), default: step > 0 ? 0 : count - 1)
            let to = clamp(try bound(stop), default: step > 0 ? count : -1)
            return Array(stride(from: from, to: to, by: step))
        }
        switch value {
        case .array(let elements):
            return .array(try indices(count: elements.count).map { elements[$0] })
        case .string(let string):
            let scalars = Array(string.unicodeScalars)
            return .string(String(String.UnicodeScalarView(try indices(count: scalars.count).map { scalars[$0] })))
        case .undefined(let reason):
            throw JinjaError(reason)
        default:
            throw JinjaError("'\(value.typeName)' object is not subscriptable")
        }
    }

    // MARK: Operators

    private func binary(_ op: BinaryOperator, _ left: Value, _ right: Value) throws -> Value {
        if op == .concat { return .string(left.pythonString + right.pythonString) }
        if case .undefined(let reason) = left { throw JinjaError(reason) }
        if case .undefined(let reason) = right { throw JinjaError(reason) }
        func unsupported() -> JinjaError {
            JinjaError("unsupported operand type(s) for \(op.rawValue): '\(left.typeName)' and '\(right.typeName)'")
        }
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> Value {
            guard !result.overflow else { throw JinjaError("integer overflow in '\(op.rawValue)'") }
            return .int(result.partialValue)
        }
        switch (op, left, right) {
        case (.add, .string(let a), .string(let b)): return .string(a + b)
        case (.add, .array(let a), .array(let b)): return .array(a + b)
        case (.multiply, .string, _), (.multiply, _, .string), (.multiply, .array, _), (.multiply, _, .array):
            return try repeated(left, right) ?? { throw unsupported() }()
        default: break
        }
        if let a = left.integer, let b = right.integer {
            switch op {
            case .add: return try checked(a.addingReportingOverflow(b))
            case .subtract: return try checked(a.subtractingReportingOverflow(b))
            case .multiply: return try checked(a.multipliedReportingOverflow(by: b))
            case .divide:
                guard b != 0 else { throw JinjaError("division by zero") }
                return .double(Double(a) / Double(b))
            case .floorDivide, .modulo:
                guard b != 0 else { throw JinjaError("integer division or modulo by zero") }
                guard !(a == .min && b == -1) else { throw JinjaError("integer overflow in '\(op.rawValue)'") }
                var quotient = a / b, remainder = a % b
                if remainder != 0, (remainder < 0) != (b < 0) { quotient -= 1; remainder += b }
                return .int(op == .floorDivide ? quotient : remainder)
            case .power:
                guard b >= 0 else { return .double(pow(Double(a), Double(b))) }
                // Exponentiation by squaring; overflow is an error, not a wrap.
                var result = 1, base = a, exponent = b
                while exponent > 0 {
                    if exponent & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).integer! }
                    exponent >>= 1
                    if exponent > 0 { base = try checked(base.multipliedReportingOverflow(by: base)).integer! }
                }
                return .int(result)
            case .concat: break
            }
        }
        if let a = left.number, let b = right.number {
            switch op {
            case .add: return .double(a + b)
            case .subtract: return .double(a - b)
            case .multiply: return .double(a * b)
            case .divide:
                guard b != 0 else { throw JinjaError("float division by zero") }
                return .double(a / b)
            case .floorDivide, .modulo:
                guard b != 0 else { throw JinjaError("float modulo") }
                var remainder = a.truncatingRemainder(dividingBy: b)
                if remainder != 0, (remainder < 0) != (b < 0) { remainder += b }
                return .double(op == .modulo ? remainder : ((a - remainder) / b).rounded())
            case .power: return .double(pow(a, b))
            case .concat: break
            }
        }
        throw unsupported()
    }

    /// `"ab" * 3`, `[x] * 2`.
    private func repeated(_ left: Value, _ right: Value) throws -> Value? {
        let (sequence, times): (Value, Int)
        if let count = right.integer { (sequence, times) = (left, count) } else if let count = left.integer { (sequence, times) = (right, count) } else { return nil }
        let length = try sequence.length()
        guard times <= 0 || length <= JinjaLimits.sequenceLength / times else {
            throw JinjaError("sequence repetition result too large")
        }
        switch sequence {
        case .string(let string): return .string(String(repeating: string, count: max(0, times)))
        case .array(let elements): return .array(Array((0..<max(0, times)).map { _ in elements }.joined()))
        default: return nil
        }
    }

    private func compare(_ op: ComparisonOperator, _ left: Value, _ right: Value) throws -> Bool {
        switch op {
        case .equal: return left.isEqual(to: right)
        case .notEqual: return !left.isEqual(to: right)
        case .less: return try left.compare(to: right, operator: op.rawValue) < 0
        case .lessOrEqual: return try left.compare(to: right, operator: op.rawValue) <= 0
        case .greater: return try left.compare(to: right, operator: op.rawValue) > 0
        case .greaterOrEqual: return try left.compare(to: right, operator: op.rawValue) >= 0
        case .isIn: return try contains(right, left)
        case .notIn: return try !contains(right, left)
        }
    }

    func contains(_ container: Value, _ element: Value) throws -> Bool {
        switch container {
        case .string(let string):
            guard case .string(let needle) = element else {
                throw JinjaError("'in <string>' requires string as left operand, not \(element.typeName)")
            }
            return Array(string.unicodeScalars).rangeOfScalars(Array(needle.unicodeScalars)) != nil
        case .object(let object):
            guard case .string(let key) = element else { return false }
            return object[key] != nil
        case .array(let elements):
            return elements.contains { $0.isEqual(to: element) }
        case .undefined:
            return false
        default:
            throw JinjaError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: Calls

    func call(_ callee: Value, _ arguments: Arguments) throws -> Value {
        switch callee {
        case .macro(let macro): return try callMacro(macro, arguments)
        case .builtin(let function): return try callBuiltin(function, arguments)
        case .undefined(let reason): throw JinjaError(reason)
        default: throw JinjaError("'\(callee.typeName)' object is not callable")
        }
    }

    private func callMacro(_ macro: MacroDefinition, _ arguments: Arguments) throws -> Value {
        macroDepth += 1
        defer { macroDepth -= 1 }
        guard macroDepth <= JinjaLimits.macroCalls else {
            throw JinjaError("macro calls nested deeper than \(JinjaLimits.macroCalls) levels (runaway recursion?)")
        }
        let bound = try arguments.bind(macro.parameters.map(\.name), to: macro.name)
        let saved = scope
        defer { scope = saved }
        // Macros see the template's globals, not the caller's local variables.
        scope = Scope(parent: root)
        for (parameter, value) in zip(macro.parameters, bound) {
            scope.variables[parameter.name] = try value ?? parameter.defaultValue.map(evaluate)
                ?? .undefined(reason: "parameter '\(parameter.name)' of macro '\(macro.name)' was not provided")
        }
        return .string(try capturingOutput { _ = try execute(macro.body) })
    }
}
