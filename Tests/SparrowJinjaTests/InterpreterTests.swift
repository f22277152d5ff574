import Testing
import SparrowJinja

private func render(_ source: String, _ context: [String: JinjaValue] = [:], options: JinjaTemplate.Options = .chatTemplate) throws -> String {
    try JinjaTemplate(source, options: options).render(context)
}

/// The error a template throws at parse or render time, or nil if it succeeds.
private func failure(_ source: String, _ context: [String: JinjaValue] = [:]) -> JinjaError? {
    do {
        _ = try render(source, context)
        return nil
    } catch let error as JinjaError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

// MARK: Expressions and statements

@Test func evaluatesExpressions() throws {
    #expect(try render("{{ 1 + 2 * 3 - 4 / 2 }}") == "5.0")
    #expect(try render("{{ (x + 1) ~ '|' ~ name | upper }}", ["x": 41, "name": "ada"]) == "42|ADA")
    #expect(try render("{{ m.content if m.role == 'user' else 'other' }}", ["m": ["role": "user", "content": "hi"]]) == "hi")
    #expect(try render("{{ xs[1:] | length }} {{ xs[-1].k }}", ["xs": [["k": 1], ["k": 2], ["k": 3]]]) == "2 3")
    #expect(try render("{{ not a and b or c }}", ["a": false, "b": true, "c": false]) == "True")
    #expect(try render("{{ 2.5 }} {{ none }} {{ [1, 'a'] }} {{ {'k': none} }}") == "2.5 None [1, 'a'] {'k': None}")
}

@Test func loopsExposeLoopVariablesAndScopeSets() throws {
    let source = "{% for m in ms %}{{ loop.index0 }}{{ m }}{% if loop.last %}!{% endif %}{% set seen = m %}{% endfor %}[{{ seen }}]"
    #expect(try render(source, ["ms": ["a", "b"]]) == "0a1b![]")
    let namespaced = "{% set ns = namespace(last='') %}{% for m in ms %}{% set ns.last = m %}{% endfor %}{{ ns.last }}"
    #expect(try render(namespaced, ["ms": ["a", "b"]]) == "b")
    #expect(try render("{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", ["d": ["b": 1, "a": 2]]) == "b1a2")
    #expect(try render("{% for x in range(9) %}{% if x is odd %}{% continue %}{% elif x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}") == "024")
}

@Test func macrosTakeDefaultsAndKeywords() throws {
    let source = "{% macro tag(name, close=false) %}<{{ '/' if close }}{{ name }}>{% endmacro %}{{ tag('a') }}{{ tag(name='a', close=true) }}"
    #expect(try render(source) == "<a></a>")
}

// MARK: Whitespace control

@Test func whitespaceControlAndBlockTrimming() throws {
    #expect(try render("a  {%- if true -%}  b  {%- endif -%}  c") == "abc")
    #expect(try render("a  {{- 'b' -}}  c") == "abc")
    // trim_blocks + lstrip_blocks (the chat-template defaults) hide block-only lines.
    #expect(try render("<\n  {% if true %}\n  x\n  {% endif %}\n>") == "<\n  x\n>")
    let plain = JinjaTemplate.Options(trimBlocks: false, lstripBlocks: false)
    #expect(try render("<\n  {% if true %}\n  x\n  {% endif %}\n>", options: plain) == "<\n  \n  x\n  \n>")
    // `{%+` keeps the indentation, `+%}` keeps the newline.
    #expect(try render("  {%+ if true +%}\nx{% endif %}") == "  \nx")
    // One trailing newline of the source is dropped unless asked otherwise.
    #expect(try render("x\n") == "x")
    #expect(try render("x\n", options: .init(keepTrailingNewline: true)) == "x\n")
    #expect(try render("a{# note #}b\r\nc") == "ab\nc")
}

// MARK: Undefined values

@Test func undefinedVariablesRenderEmptyAndAreFalsy() throws {
    #expect(try render("[{{ missing }}]{% if missing %}yes{% else %}no{% endif %}") == "[]no")
    #expect(try render("{{ m.tool_calls is defined }}{{ not m.tool_calls }}", ["m": ["role": "user"]]) == "FalseTrue")
    #expect(try render("{{ missing | default('d') }}{{ missing | length }}{% for x in missing %}x{% endfor %}") == "d0")
    let error = try #require(failure("line one\n{{ missing.attribute }}"))
    #expect(error.description == "line 2: 'missing' is undefined")
}

// MARK: Errors

@Test func raiseExceptionPassesTheMessageThrough() throws {
    let error = try #require(failure("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
                                     ["messages": [["role": "system", "content": "x"]]]))
    #expect(error.description == "System role not supported")
    #expect(error.isRaisedByTemplate)
}

@Test func errorsNameTheProblemAndLine() throws {
    let cases: [(String, String)] = [
        ("a\n{% if x %}\nb", "line 2: unexpected end of template: 'if' block opened here was never closed (expected 'elif' or 'else' or 'endif')"),
        ("{{ 'x' | nope }}", "line 1: unknown filter 'nope'"),
        ("\n\n{{ x is nope }}", "line 3: unknown test 'nope'"),
        ("{% frobnicate %}", "line 1: unknown or misplaced tag 'frobnicate'"),
        ("{% endfor %}", "line 1: unknown or misplaced tag 'endfor'"),
        ("{{ 'abc }}", "line 1: unterminated string literal"),
        ("x\n{{ 1 + }}", "line 2: expected an expression, got '}}'"),
        ("{% break %}", "line 1: 'break' outside of a loop"),
        ("{# open", "line 1: missing end of comment tag"),
        ("{{ 1 + 'a' }}", "line 1: unsupported operand type(s) for +: 'int' and 'str'"),
        ("{{ 1 // 0 }}", "line 1: integer division or modulo by zero"),
        ("{% for a, b in [1] %}{% endfor %}", "line 1: 'int' object is not iterable"),
        ("{% set x = 1 %}{% set x.y = 2 %}", "line 1: cannot assign attribute 'y' on 'x', which is not a namespace"),
        ("{{ 'a'.split('') }}", "line 1: split(): empty separator"),
    ]
    for (source, message) in cases {
        #expect(failure(source)?.description == message, "\(source)")
    }
}

@Test func malformedTemplatesThrowInsteadOfCrashing() {
    let malformed = [
        "{{", "{%", "{{ (", "{{ [1, }}", "{{ {1: }}", "{% for %}", "{% for x in %}{% endfor %}", "{% set %}",
        "{{ a | }}", "{{ 1 +* 2 }}", "{{ a. }}", "{{ a[ }}", "{{ a[1:2:3:4] }}", "{% raw %} x", "{% if x %}{% else %}{% else %}{% endif %}",
        "{% macro m( %}{% endmacro %}", "{{ f(a=1, 2) }}", "{{ ) }}", "{{ x ]", "{% endif %}", "{% if x %}{% endfor %}",
        "{{ 99999999999999999999 }}", "{{ '\\x4' }}", "{{ 1 }} }} {% %}",
    ]
    for source in malformed {
        #expect(failure(source) != nil, "\(source)")
    }
}

@Test func nestingAndSizeAreBounded() throws {
    let deepParentheses = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
    #expect(failure(deepParentheses)?.description.contains("nesting deeper than") == true)
    #expect(failure("{{ " + String(repeating: "not ", count: 5000) + "1 }}") != nil)
    #expect(failure("{{ " + String(repeating: "-", count: 5000) + "1 }}") != nil)
    #expect(failure("{{ " + String(repeating: "[", count: 5000) + " }}") != nil)
    #expect(failure(String(repeating: "{% if true %}", count: 5000)) != nil)
    // Reasonable nesting still works.
    #expect(try render("{{ " + String(repeating: "(", count: 30) + "1" + String(repeating: ")", count: 30) + " }}") == "1")

    var deepData: JinjaValue = 1
    for _ in 0..<1000 { deepData = [deepData] }
    #expect(failure("{{ x | tojson }}", ["x": deepData])?.description.contains("nested deeper than") == true)
    #expect(throws: JinjaError.self) { try JinjaValue(json: String(repeating: "[", count: 100_000)) }

    #expect(failure("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")?.description.contains("macro calls nested deeper") == true)
    #expect(failure("{{ range(100000000000) | length }}") != nil)
    #expect(failure("{{ 'ab' * 100000000000 }}") != nil)
    #expect(failure("{{ 9223372036854775807 + 1 }}")?.description.contains("overflow") == true)
    #expect(failure("{{ 2 ** 64 }}")?.description.contains("overflow") == true)
}

// MARK: Values and JSON

@Test func objectsKeepInsertionOrder() throws {
    let object: JinjaValue = ["zeta": 1, "alpha": ["nested": true, "b": nil], "mid": 2.5]
    #expect(try render("{{ o | tojson }}", ["o": object]) == #"{"zeta": 1, "alpha": {"nested": true, "b": null}, "mid": 2.5}"#)
    #expect(JinjaObject(["b": 1, "a": 2]).keys == ["a", "b"])  // Swift dictionaries have no order: sorted
    #expect(JinjaValue.object(["a": 1, "b": 2]) == .object(["b": 2, "a": 1]))  // equality ignores order, like Python
}

@Test func jsonRoundTripsKeepingOrder() throws {
    let text = #"{"b": [1, -2.5, 1e+20, true, false, null], "a": "é\n\"\\ \u0001 😀", "c": {}}"#
    let value = try JinjaValue(json: text)
    #expect(value.jsonString() == text)
    #expect(try JinjaValue(json: #""\ud83d\ude00""#) == "😀")
    #expect(try JinjaValue(json: "[1,\n 2]").jsonString(indent: 2) == "[\n  1,\n  2\n]")
    for bad in ["", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "[1] 2", "{\"a\": 01x}", #""\ud800""#] {
        #expect(throws: JinjaError.self, "\(bad)") { try JinjaValue(json: bad) }
    }
}

@Test func strftimeNowFormatsTheCurrentDate() throws {
    let year = try render("{{ strftime_now('%Y') }}")
    #expect(year.count == 4 && Int(year)! >= 2024)
}

@Test func templatesRenderConcurrently() async throws {
    let template = try JinjaTemplate("{% for m in messages %}{{ m.content }}{% endfor %}")
    try await withThrowingTaskGroup(of: String.self) { group in
        for index in 0..<8 {
            group.addTask { try template.render(["messages": [["content": .string("m\(index)")]]]) }
        }
        var results: [String] = []
        for try await result in group { results.append(result) }
        #expect(Set(results) == Set((0..<8).map { "m\($0)" }))
    }
}
