// Tokenizer keys against llama.cpp's converter: SentencePiece (validation/fixtures/sentencepiece) and the
// byte-level BPE of the transformers-made fixtures (their keys are checked in GGUFConversionTests).
import Foundation
import Testing
@testable import OutputPlanning
import ModelCatalog
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

@Test func sentencePieceKeysEqualLlamaCpps() throws {
    let directory = fixtures.appendingPathComponent("sentencepiece").path
    let config = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/config.json"))))
    let spec = try ModelSpec(config: config)
    var warnings: [String] = []
    let keys = try TokenizerMetadata.keys(directory: directory, spec: spec, config: config, warnings: &warnings)
    let expected = try #require(
        try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/expected.json")))).objectValue)
    #expect(warnings.isEmpty)
    #expect(Set(keys.map(\.0.rawValue)) == Set(expected.keys))
    for (key, value) in keys {
        let reference = try #require(expected[key.rawValue])
        switch value {
        case .string(let s): #expect(reference.stringValue == s, "\(key)")
        case .uint32(let v): #expect(reference.intValue == Int(v), "\(key)")
        case .array(.string, let elements):
            #expect(reference.arrayValue?.compactMap(\.stringValue) == elements.compactMap(\.stringValue), "\(key)")
        case .array(.int32, let elements):
            #expect(reference.arrayValue?.compactMap(\.intValue) == elements.compactMap(\.integerValue), "\(key)")
        case .array(.float32, let elements):
            let ours = elements.map { if case .float32(let f) = $0 { f } else { Float.nan } }
            #expect(reference.arrayValue?.compactMap(\.doubleValue).map(Float.init) == ours, "\(key)")
        default: Issue.record("\(key): unexpected \(value)")
        }
    }
}

@Test func unknownPreTokenizerIsWrittenWithAWarning() throws {
    var spec = try ModelSpec(config: try #require(ModelPresets.named("tiny", architecture: .mixtral)).config)
    spec.modelType = "mixtral"
    var warnings: [String] = []
    let name = TokenizerMetadata.preTokenizerName(["type": "Sequence", "pretokenizers": []], spec: spec, warnings: &warnings)
    #expect(name == "gpt-2")
    #expect(warnings.count == 1)
}

@Test func tiktokenMergesAreRecoveredFromRanks() throws {
    // 256 byte tokens, then "ab" (256), "abc" (257), "bc" (258), " a" (259): "abc" merges as "ab" + "c" because
    // "ab" ranks below "bc"; "bc" itself is the merge "b" + "c".
    let directory = NSTemporaryDirectory() + "moeq-tiktoken-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var lines = (0..<256).map { "\(Data([UInt8($0)]).base64EncodedString()) \($0)" }
    for (i, token) in ["ab", "abc", "bc", " a"].enumerated() { lines.append("\(Data(token.utf8).base64EncodedString()) \(256 + i)") }
    try lines.joined(separator: "\n").write(toFile: directory + "/tiktoken.model", atomically: true, encoding: .utf8)
    let config: JSONValue = ["added_tokens_decoder": ["260": ["content": "[BOS]", "special": true]]]
    let keys = try TiktokenVocabulary.keys(directory: directory, vocabularySize: 600, tokenizerConfig: config)
    let byKey = Dictionary(uniqueKeysWithValues: keys.map { ($0.0.rawValue, $0.1) })
    guard case .array(_, let merges) = try #require(byKey["tokenizer.ggml.merges"]),
        case .array(_, let tokens) = try #require(byKey["tokenizer.ggml.tokens"]),
        case .array(_, let types) = try #require(byKey["tokenizer.ggml.token_type"])
    else { Issue.record("missing arrays"); return }
    #expect(merges.compactMap(\.stringValue) == ["a b", "ab c", "b c", "Ġ a"])
    #expect(tokens.count == 600)
    #expect(
        tokens[257].stringValue == "abc" && tokens[259].stringValue == "Ġa" && tokens[65].stringValue == "A"
            && tokens[32].stringValue == "Ġ")
    #expect(tokens[260].stringValue == "[BOS]" && types[260].integerValue == 3)
    #expect(tokens[261].stringValue == "<|reserved_token_261|>" && types[261].integerValue == 3)
    #expect(tokens[599].stringValue == "[PAD599]" && types[599].integerValue == 5)
    #expect(types[100].integerValue == 1)
    #expect(byKey["tokenizer.ggml.pre"]?.stringValue == "kimi-k2")
}
