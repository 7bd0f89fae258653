// The strict JSON parser: values, exact integers, escapes, and every rejection with its offset.
import Foundation
import Testing
@testable import TensorFormats

@Test func parsesValuesAndKeepsObjectOrder() throws {
    let value = try JSONParser.parse(#" {"b": [1, -2, 3.5, 1e3, true, false, null], "a": "x\u00e9\n\ud83d\ude00"} "#)
    let object = try #require(value.objectValue)
    #expect(object.keys == ["b", "a"])
    #expect(value["b"] == [1, -2, 3.5, 1000.0, true, false, nil])
    #expect(value["a"]?.stringValue == "xé\n😀")
}

@Test func integersAreExactAndOverflowBecomesDouble() throws {
    #expect(try JSONParser.parse("9223372036854775807") == .integer(Int64.max))
    #expect(try JSONParser.parse("-9223372036854775808") == .integer(Int64.min))
    #expect(try JSONParser.parse("18446744073709551616") == .double(18446744073709551616))
    #expect(try JSONParser.parse("2.0").intValue == 2)
    #expect(try JSONParser.parse("2.5").intValue == nil)
}

@Test(arguments: [
    ("", 0), ("{", 1), ("[1,]", 3), ("{\"a\":1,}", 7), ("01", 1), ("-", 1), ("1.", 2), ("1e", 2), ("tru", 0),
    ("\"\\x\"", 3), ("\"\u{01}\"", 1), ("\"\\ud800\"", 7), ("{\"a\":1 \"b\":2}", 7), ("[1] 2", 4), ("\"abc", 4),
])
func rejectsMalformedDocuments(text: String, offset: Int) {
    #expect(throws: JSONError.self) { try JSONParser.parse(text) }
    do { _ = try JSONParser.parse(text) } catch { #expect(error.offset == offset, "\(text): \(error)") }
}

@Test func rejectsDuplicateKeysAndDeepNesting() {
    #expect(throws: JSONError(offset: 9, reason: "duplicate key \"a\"", duplicateKey: "a")) { try JSONParser.parse(#"{"a": 1, "a": 2}"#) }
    let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
    #expect(throws: JSONError.self) { try JSONParser.parse(deep) }
}

@Test func rejectsInvalidUTF8() {
    #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
}

@Test func serializationRoundTrips() throws {
    let value: JSONValue = ["z": [1, 2.5, "q\"\\\n\u{01}"], "a": ["nested": nil, "t": true]]
    #expect(try JSONParser.parse(value.serialized()) == value)
    #expect(try JSONParser.parse(value.prettyPrinted()) == value)
}

/// Recipe files may be YAML: our reader gives exactly what PyYAML's safe_load gives (validation/recipes/*.yaml.json,
/// made by validation/recipes/make_yaml_fixtures.py) for the recipe example and a file of edge cases.
@Test(arguments: ["deepseek-custom.yaml", "edge-cases.yaml"])
func yamlMatchesPyYAML(file: String) throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("validation/recipes")
    let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
    let expected = try JSONParser.parse([UInt8](try Data(contentsOf: directory.appendingPathComponent(file + ".json"))))
    let parsed = try YAMLDocument.parse(text)
    #expect(parsed == expected, "\(parsed.serialized())")
}

@Test func yamlRefusesWhatRecipesNeverNeed() {
    for (text, line) in [
        ("a: &anchor 1\nb: *anchor", 1), ("a: |\n  block", 1), ("a: 1\n---\nb: 2", 2), ("a: 1\na: 2", 2),
        ("a:\n\tb: 1", 2), ("a: [1, 2", 1), ("a: \"open", 1), ("- a\nb: 1", 2),
        ("a: b: c", 1), ("a: 1\n- b: 2", 2), (String(repeating: "[", count: 100), 1),
    ] {
        #expect(throws: YAMLError.self, "\(text)") { try YAMLDocument.parse(text) }
        do { _ = try YAMLDocument.parse(text) } catch { #expect(error.line == line, "\(text): \(error)") }
    }
}
