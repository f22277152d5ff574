// Syntax tree of a parsed template. Expressions carry no line numbers; each statement
// does, and evaluation errors are reported at the enclosing statement's line.

struct Argument: Sendable {
    let name: String?
    let value: Expression
}

enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//"
    case modulo = "%", power = "**", concat = "~"
}

enum ComparisonOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">"
    case greaterOrEqual = ">=", isIn = "in", notIn = "not in"
}

indirect enum Expression: Sendable {
    case literal(JinjaValue)
    case name(String)
    case list([Expression])
    case dictionary([(key: Expression, value: Expression)])
    case attribute(Expression, String)
    case item(Expression, Expression)
    case slice(Expression, start: Expression?, stop: Expression?, step: Expression?)
    case call(Expression, [Argument])
    case filter(Expression, name: String, [Argument])
    case test(Expression, name: String, [Argument], negated: Bool)
    case negate(Expression)
    case unaryPlus(Expression)
    case not(Expression)
    case and(Expression, Expression)
    case or(Expression, Expression)
    case binary(BinaryOperator, Expression, Expression)
    /// Chained comparison `a < b < c`, evaluated pairwise like Python.
    case comparison(Expression, [(ComparisonOperator, Expression)])
    case conditional(condition: Expression, then: Expression, otherwise: Expression?)
}

enum AssignmentTarget: Sendable {
    case names([String])
    case namespaceAttribute(namespace: String, attribute: String)
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expression?)]
    let body: [Node]
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expression, line: Int)
    case conditional(branches: [(condition: Expression, body: [Node])], otherwise: [Node], line: Int)
    case loop(targets: [String], iterable: Expression, filter: Expression?, body: [Node], otherwise: [Node], line: Int)
    case assign(AssignmentTarget, Expression, line: Int)
    case assignBlock(AssignmentTarget, body: [Node], line: Int)
    case macro(MacroDefinition, line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
}
