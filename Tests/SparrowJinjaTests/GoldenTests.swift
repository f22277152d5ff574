import Foundation
import Testing
import SparrowJinja

/// Renderings produced by Python jinja2 configured as Hugging Face transformers does
/// (scripts/make_template_goldens.py); SparrowJinja must match them byte for byte.
private func loadFixture(_ name: String) throws -> JinjaObject {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/templates/\(name)")
    let text = try String(contentsOf: url, encoding: .utf8)
    let value = try JinjaValue(json: text)
    guard case .object(let object) = value else { throw FixtureError(file: name) }
    return object
}

private struct FixtureError: Error { let file: String }

private struct GoldenCase: CustomTestStringConvertible {
    let name: String
    let template: String
    let context: JinjaObject
    let expected: String?
    let error: String?
    var testDescription: String { name }
}

private func string(_ value: JinjaValue?) -> String? {
    if case .string(let text)? = value { return text }
    return nil
}

private func cases(_ fixture: JinjaObject) -> [JinjaObject] {
    guard case .array(let elements)? = fixture["cases"] else { return [] }
    return elements.compactMap { if case .object(let object) = $0 { return object } else { return nil } }
}

private func chatCases() throws -> [GoldenCase] {
    let fixture = try loadFixture("chat_templates.json")
    guard case .array(let templates)? = fixture["templates"] else { return [] }
    var sources: [String: String] = [:]
    for case .object(let template) in templates {
        sources[string(template["name"])!] = string(template["template"])!
    }
    return cases(fixture).map { object in
        guard case .object(let context)? = object["context"] else { fatalError("case without context") }
        let templateName = string(object["template"])!
        return GoldenCase(name: templateName + " " + string(object["name"])!, template: sources[templateName]!,
                          context: context, expected: string(object["expected"]), error: string(object["error"]))
    }
}

private func expressionCases() throws -> [GoldenCase] {
    cases(try loadFixture("expressions.json")).map { object in
        guard case .object(let context)? = object["context"] else { fatalError("case without context") }
        let template = string(object["template"])!
        return GoldenCase(name: template, template: template, context: context,
                          expected: string(object["expected"]), error: string(object["error"]))
    }
}

private func check(_ golden: GoldenCase) throws {
    let template = try JinjaTemplate(golden.template)
    let context = Dictionary(uniqueKeysWithValues: golden.context.map { ($0.key, $0.value) })
    if let expected = golden.expected {
        let rendered = try template.render(context)
        #expect(rendered == expected, "\(golden.name)")
    } else {
        #expect(throws: JinjaError.self, "\(golden.name) should fail like the reference: \(golden.error ?? "")") {
            try template.render(context)
        }
    }
}

@Test func fixturesArePresent() throws {
    #expect(try chatCases().count >= 50)
    #expect(try expressionCases().count >= 40)
    // Every model template renders at least one conversation successfully.
    let rendered = Set(try chatCases().filter { $0.expected != nil }.map { $0.name.split(separator: " ")[0] })
    #expect(rendered == ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-hf-template"])
}

@Test(arguments: try chatCases())
private func modelChatTemplateMatchesReference(_ golden: GoldenCase) throws {
    try check(golden)
}

@Test(arguments: try expressionCases())
private func languageFeatureMatchesReference(_ golden: GoldenCase) throws {
    try check(golden)
}

@Test func raiseExceptionMessageMatchesReference() throws {
    let golden = try chatCases().first { $0.error != nil }!
    let template = try JinjaTemplate(golden.template)
    let context = Dictionary(uniqueKeysWithValues: golden.context.map { ($0.key, $0.value) })
    do {
        _ = try template.render(context)
        Issue.record("expected raise_exception")
    } catch let error as JinjaError {
        #expect(error.description == golden.error)
        #expect(error.isRaisedByTemplate)
    }
}
