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
    let ours = try tokenizer.encode(text)
    #expect(ours.count == ids.count)
    let first = zip(ours, ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
    #expect(first == nil, "first difference at token \(first ?? -1)")
}

/// Kimi's tiktoken tokenizer (tiktoken.model + added_tokens_decoder, Kimi's pre-tokenizer pattern) against the
/// `tiktoken` package (validation/fixtures/make_tiktoken_fixture.py): a multilingual sample with special tokens,
/// odd whitespace and contractions, and the held-out KJV text.
@Test func tiktokenIdsEqualPythonTiktoken() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let directory = root.appendingPathComponent("validation/fixtures/tiktoken-kimi")
    let reference = try JSONParser.parse([UInt8](try Data(contentsOf: directory.appendingPathComponent("reference.json"))))
    let tokenizer = try TokenizerLoader.load(directory: directory.path, vocabularySize: Int(Int32.max))
    #expect(tokenizer is TiktokenTokenizer)
    let cases = try #require(reference["ids"]?.objectValue)
    #expect(cases.pairs.count == 2)
    for (file, ids) in cases.pairs {
        let expected = (ids.arrayValue ?? []).compactMap { $0.intValue }
        let text = String(decoding: try Data(contentsOf: directory.appendingPathComponent(file)), as: UTF8.self)
        let ours = try tokenizer.encode(text)
        let first = zip(ours, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(
            ours.count == expected.count && first == nil,
            """
            \(file): \(ours.count) vs \(expected.count) ids, first difference at \(first ?? -1): ours \
            \(first.map { Array(ours[max(0, $0 - 3)..<min(ours.count, $0 + 3)]) } ?? []), tiktoken \
            \(first.map { Array(expected[max(0, $0 - 3)..<min(expected.count, $0 + 3)]) } ?? [])
            """
        )
    }
}
