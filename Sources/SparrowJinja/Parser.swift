// Recursive-descent parser from tokens to the syntax tree. Operator precedence follows
// Jinja2's grammar (loosest first): conditional `x if c else y`, `or`, `and`, `not`,
// comparisons and `in`, `+ -`, `~`, `* / // %`, `**` (left-associative, as in Jinja2),
// unary `- +`, then postfix access, calls, filters `|` and tests `is`.

struct Parser {
    private let tokens: [Token]
    private var index = 0
    private var depth = 0
    /// Loops enclosing the current position (reset inside macros), so a `break` outside
    /// any loop is a syntax error.
    private var loopDepth = 0

    init(tokens: [Token]) { self.tokens = tokens }

    mutating func parseTemplate() throws -> [Node] {
        let (nodes, endTag) = try parseNodes(until: [])
        if let endTag { throw JinjaError("unexpected '\(endTag)' tag", line: current.line) }
        return nodes
    }

    // MARK: Token helpers

    private var current: Token { tokens[index] }

    private mutating func next() -> Token {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }

    private mutating func skip(op: String) -> Bool {
        guard isOp(op) else { return false }
        index += 1
        return true
    }

    private mutating func skip(name: String) -> Bool {
        guard isName(name) else { return false }
        index += 1
        return true
    }

    private func describe(_ token: Token) -> String {
        switch token.kind {
        case .text: return "template text"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .name(let name): return "'\(name)'"
        case .string(let value): return "string '\(value)'"
        case .integer(let value): return "number \(value)"
        case .float(let value): return "number \(value)"
        case .op(let op): return "'\(op)'"
        case .end: return "end of template"
        }
    }

    private func unexpected(expected: String) -> JinjaError {
        JinjaError("expected \(expected), got \(describe(current))", line: current.line)
    }

    private mutating func expect(op: String) throws {
        guard skip(op: op) else { throw unexpected(expected: "'\(op)'") }
    }

    private mutating func expectName() throws -> String {
        guard case .name(let name) = current.kind else { throw unexpected(expected: "a name") }
        index += 1
        return name
    }

    private mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw unexpected(expected: "'%}'") }
        index += 1
    }

    /// Bounds recursion so deeply nested input fails with an error instead of exhausting
    /// the stack.
    private mutating func nested<T>(_ body: (inout Parser) throws -> T) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaLimits.templateNesting else {
            throw JinjaError("template nesting deeper than \(JinjaLimits.templateNesting) levels", line: current.line)
        }
        return try body(&self)
    }

    // MARK: Statements

    /// Parses nodes until a block tag named in `endTags` (or the end of input). Returns the
    /// tag name found, leaving the parser just after that name.
    private mutating func parseNodes(until endTags: Set<String>) throws -> ([Node], String?) {
        var nodes: [Node] = []
        while true {
            let token = next()
            switch token.kind {
            case .end:
                return (nodes, nil)
            case .text(let text):
                nodes.append(.text(text))
            case .variableBegin:
                let expression = try parseTuple()
                guard current.kind == .variableEnd else { throw unexpected(expected: "'}}'") }
                index += 1
                nodes.append(.output(expression, line: token.line))
            case .blockBegin:
                let tagLine = current.line
                let tag = try expectName()
                if endTags.contains(tag) { return (nodes, tag) }
                try nested { parser in try parser.parseStatement(tag, line: tagLine, into: &nodes) }
            default:
                throw JinjaError("unexpected \(describe(token))", line: token.line)
            }
        }
    }

    private mutating func parseBody(until endTags: Set<String>, opener: String, line: Int) throws -> ([Node], String) {
        let (body, endTag) = try parseNodes(until: endTags)
        guard let endTag else {
            let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw JinjaError("unexpected end of template: '\(opener)' block opened here was never closed (expected \(expected))", line: line)
        }
        return (body, endTag)
    }

    private mutating func parseStatement(_ tag: String, line: Int, into nodes: inout [Node]) throws {
        switch tag {
        case "if": nodes.append(try parseIf(line: line))
        case "for": nodes.append(try parseFor(line: line))
        case "set": nodes.append(try parseSet(line: line))
        case "macro": nodes.append(try parseMacro(line: line))
        case "break", "continue":
            guard loopDepth > 0 else { throw JinjaError("'\(tag)' outside of a loop", line: line) }
            try expectBlockEnd()
            nodes.append(tag == "break" ? .breakLoop(line: line) : .continueLoop(line: line))
        case "generation":
            // Hugging Face's marker for assistant-generated spans; renders its body as is.
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"], opener: tag, line: line)
            try expectBlockEnd()
            nodes.append(contentsOf: body)
        default:
            throw JinjaError("unknown or misplaced tag '\(tag)'", line: line)
        }
    }

    private mutating func parseIf(line: Int) throws -> Node {
        var branches: [(condition: Expression, body: [Node])] = []
        var condition = try parseTuple()
        while true {
            try expectBlockEnd()
            let (body, endTag) = try parseBody(until: ["elif", "else", "endif"], opener: "if", line: line)
            branches.append((condition, body))
            switch endTag {
            case "elif":
                condition = try parseTuple()
            case "else":
                try expectBlockEnd()
                let (otherwise, _) = try parseBody(until: ["endif"], opener: "if", line: line)
                try expectBlockEnd()
                return .conditional(branches: branches, otherwise: otherwise, line: line)
            default:
                try expectBlockEnd()
                return .conditional(branches: branches, otherwise: [], line: line)
            }
        }
    }

    private mutating func parseFor(line: Int) throws -> Node {
        var targets = [try expectName()]
        while skip(op: ",") { targets.append(try expectName()) }
        guard skip(name: "in") else { throw unexpected(expected: "'in'") }
        let iterable = try parseTuple(allowConditional: false)
        let filter = skip(name: "if") ? try parseExpression() : nil
        if isName("recursive") { throw JinjaError("recursive loops are not supported", line: line) }
        try expectBlockEnd()
        loopDepth += 1
        let (body, endTag) = try parseBody(until: ["else", "endfor"], opener: "for", line: line)
        loopDepth -= 1
        var otherwise: [Node] = []
        if endTag == "else" {
            try expectBlockEnd()
            (otherwise, _) = try parseBody(until: ["endfor"], opener: "for", line: line)
        }
        try expectBlockEnd()
        return .loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line)
    }

    private mutating func parseSet(line: Int) throws -> Node {
        let first = try expectName()
        let target: AssignmentTarget
        if skip(op: ".") {
            target = .namespaceAttribute(namespace: first, attribute: try expectName())
        } else {
            var names = [first]
            while skip(op: ",") { names.append(try expectName()) }
            target = .names(names)
        }
        if skip(op: "=") {
            let value = try parseTuple()
            try expectBlockEnd()
            return .assign(target, value, line: line)
        }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"], opener: "set", line: line)
        try expectBlockEnd()
        return .assignBlock(target, body: body, line: line)
    }

    private mutating func parseMacro(line: Int) throws -> Node {
        let name = try expectName()
        try expect(op: "(")
        var parameters: [(name: String, defaultValue: Expression?)] = []
        while !skip(op: ")") {
            if !parameters.isEmpty { try expect(op: ",") }
            if skip(op: ")") { break }
            let parameter = try expectName()
            parameters.append((parameter, skip(op: "=") ? try parseExpression() : nil))
        }
        try expectBlockEnd()
        let enclosingLoops = loopDepth
        loopDepth = 0
        let (body, _) = try parseBody(until: ["endmacro"], opener: "macro", line: line)
        loopDepth = enclosingLoops
        if case .name = current.kind { index += 1 }  // optional `{% endmacro name %}`
        try expectBlockEnd()
        return .macro(MacroDefinition(name: name, parameters: parameters, body: body), line: line)
    }

    // MARK: Expressions

    /// An expression, or a tuple `a, b` (represented as a list) when commas follow.
    private mutating func parseTuple(allowConditional: Bool = true) throws -> Expression {
        let first = try parseExpression(allowConditional: allowConditional)
        guard isOp(",") else { return first }
        var elements = [first]
        while skip(op: ",") {
            if [.variableEnd, .blockEnd].contains(current.kind) || isOp(")") || isName("if") { break }
            elements.append(try parseExpression(allowConditional: allowConditional))
        }
        return .list(elements)
    }

    private mutating func parseExpression(allowConditional: Bool = true) throws -> Expression {
        try nested { parser in
            var expression = try parser.parseOr()
            guard allowConditional else { return expression }
            while parser.skip(name: "if") {
                let condition = try parser.parseOr()
                let otherwise = parser.skip(name: "else") ? try parser.parseExpression() : nil
                expression = .conditional(condition: condition, then: expression, otherwise: otherwise)
            }
            return expression
        }
    }

    private mutating func parseOr() throws -> Expression {
        var left = try parseAnd()
        while skip(name: "or") { left = .or(left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws -> Expression {
        var left = try parseNot()
        while skip(name: "and") { left = .and(left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws -> Expression {
        if skip(name: "not") { return try nested { parser in .not(try parser.parseNot()) } }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> Expression {
        let left = try parseAdditive()
        var operations: [(ComparisonOperator, Expression)] = []
        while true {
            let op: ComparisonOperator
            if case .op(let symbol) = current.kind, let comparison = ComparisonOperator(rawValue: symbol),
               comparison != .isIn, comparison != .notIn
            {
                op = comparison
                index += 1
            } else if skip(name: "in") {
                op = .isIn
            } else if isName("not"), tokens[index + 1].kind == .name("in") {
                index += 2
                op = .notIn
            } else {
                break
            }
            operations.append((op, try parseAdditive()))
        }
        return operations.isEmpty ? left : .comparison(left, operations)
    }

    private mutating func parseBinary(
        _ operators: [BinaryOperator], operand: (inout Parser) throws -> Expression
    ) throws -> Expression {
        var left = try operand(&self)
        while case .op(let symbol) = current.kind, let op = BinaryOperator(rawValue: symbol), operators.contains(op) {
            index += 1
            left = .binary(op, left, try operand(&self))
        }
        return left
    }

    private mutating func parseAdditive() throws -> Expression {
        try parseBinary([.add, .subtract]) { try $0.parseConcat() }
    }

    private mutating func parseConcat() throws -> Expression {
        try parseBinary([.concat]) { try $0.parseMultiplicative() }
    }

    private mutating func parseMultiplicative() throws -> Expression {
        try parseBinary([.multiply, .divide, .floorDivide, .modulo]) { try $0.parsePower() }
    }

    private mutating func parsePower() throws -> Expression {
        try parseBinary([.power]) { try $0.parseUnary() }
    }

    private mutating func parseUnary(withFilters: Bool = true) throws -> Expression {
        try nested { parser in
            var expression: Expression
            if parser.skip(op: "-") {
                expression = .negate(try parser.parseUnary(withFilters: false))
            } else if parser.skip(op: "+") {
                expression = .unaryPlus(try parser.parseUnary(withFilters: false))
            } else {
                expression = try parser.parsePostfix(try parser.parsePrimary())
            }
            return withFilters ? try parser.parseFiltersAndTests(expression) : expression
        }
    }

    private mutating func parsePrimary() throws -> Expression {
        let token = next()
        switch token.kind {
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name)
            }
        case .string(var value):
            // Adjacent string literals concatenate, as in Python.
            while case .string(let more) = current.kind {
                value += more
                index += 1
            }
            return .literal(.string(value))
        case .integer(let value): return .literal(.int(value))
        case .float(let value): return .literal(.double(value))
        case .op("("):
            if skip(op: ")") { return .list([]) }
            let first = try parseExpression()
            if skip(op: ")") { return first }
            var elements = [first]
            while skip(op: ",") {
                if isOp(")") { break }
                elements.append(try parseExpression())
            }
            try expect(op: ")")
            return .list(elements)
        case .op("["):
            var elements: [Expression] = []
            while !skip(op: "]") {
                if !elements.isEmpty { try expect(op: ",") }
                if skip(op: "]") { break }
                elements.append(try parseExpression())
            }
            return .list(elements)
        case .op("{"):
            var pairs: [(key: Expression, value: Expression)] = []
            while !skip(op: "}") {
                if !pairs.isEmpty { try expect(op: ",") }
                if skip(op: "}") { break }
                let key = try parseExpression()
                try expect(op: ":")
                pairs.append((key, try parseExpression()))
            }
            return .dictionary(pairs)
        default:
            index -= 1
            throw unexpected(expected: "an expression")
        }
    }

    private mutating func parsePostfix(_ base: Expression) throws -> Expression {
        var expression = base
        while true {
            if skip(op: ".") {
                switch next().kind {
                case .name(let name): expression = .attribute(expression, name)
                case .integer(let value): expression = .item(expression, .literal(.int(value)))
                default:
                    index -= 1
                    throw unexpected(expected: "an attribute name after '.'")
                }
            } else if skip(op: "[") {
                expression = try parseSubscript(of: expression)
            } else if isOp("(") {
                expression = .call(expression, try parseArguments())
            } else {
                return expression
            }
        }
    }

    private mutating func parseSubscript(of base: Expression) throws -> Expression {
        var parts: [Expression?] = [nil]
        var isSlice = false
        while !skip(op: "]") {
            if skip(op: ":") {
                isSlice = true
                parts.append(nil)
                guard parts.count <= 3 else { throw JinjaError("too many ':' in slice", line: current.line) }
            } else {
                guard parts[parts.count - 1] == nil else { throw unexpected(expected: "']' or ':'") }
                parts[parts.count - 1] = try parseExpression()
            }
        }
        guard isSlice else {
            guard let key = parts[0] else { throw JinjaError("empty subscript", line: current.line) }
            return .item(base, key)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, start: parts[0], stop: parts[1], step: parts[2])
    }

    private mutating func parseArguments() throws -> [Argument] {
        try expect(op: "(")
        var arguments: [Argument] = []
        while !skip(op: ")") {
            if !arguments.isEmpty { try expect(op: ",") }
            if skip(op: ")") { break }
            if case .name(let name) = current.kind, tokens[index + 1].kind == .op("=") {
                index += 2
                arguments.append(Argument(name: name, value: try parseExpression()))
            } else {
                guard arguments.allSatisfy({ $0.name == nil }) else {
                    throw JinjaError("positional argument follows keyword argument", line: current.line)
                }
                arguments.append(Argument(name: nil, value: try parseExpression()))
            }
        }
        return arguments
    }

    private mutating func parseFiltersAndTests(_ base: Expression) throws -> Expression {
        var expression = base
        while true {
            if skip(op: "|") {
                let name = try expectName()
                let arguments = isOp("(") ? try parseArguments() : []
                expression = .filter(expression, name: name, arguments)
            } else if skip(name: "is") {
                let negated = skip(name: "not")
                let name = try expectName()
                var arguments: [Argument] = []
                if isOp("(") {
                    arguments = try parseArguments()
                } else if startsBareTestArgument {
                    // `x is divisibleby 3`: a single argument without parentheses.
                    arguments = [Argument(name: nil, value: try parsePostfix(try parsePrimary()))]
                }
                expression = .test(expression, name: name, arguments, negated: negated)
            } else if isOp("(") {
                expression = .call(expression, try parseArguments())
            } else {
                return expression
            }
        }
    }

    private var startsBareTestArgument: Bool {
        switch current.kind {
        case .name(let name): return !["else", "or", "and", "if", "not", "in", "is"].contains(name)
        case .string, .integer, .float: return true
        case .op(let op): return op == "[" || op == "{"
        default: return false
        }
    }
}
