// The BPE tokenizer against the Python `tokenizers` package (validation/fixtures/tokenizer_ids.json).
import Foundation
import Testing
@testable import ReferenceEngine
import TensorFormats

@Test(arguments: ["deepseek_v3-f32", "qwen3_moe-f32", "mixtral-f32"])
func tokenIdsEqualPythonTokenizers(fixture: String) throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let expectedData = try Data(contentsOf: root.appendingPathComponent("validation/fixtures/tokenizer_ids.json"))
    let expected = try JSONParser.parse([UInt8](expectedData))
    let text = try #require(expected["text"]?.stringValue)
    let ids = (expected[fixture]?.arrayValue ?? []).compactMap { $0.intValue }
    #expect(ids.count > 1000)
    let tokenizer = try BPETokenizer(path: root.appendingPathComponent("validation/fixtures/\(fixture)/tokenizer.json").path)
    let ours = tokenizer.encode(text)
    #expect(ours.count == ids.count)
    let first = zip(ours, ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
    #expect(first == nil, "first difference at token \(first ?? -1)")
}
