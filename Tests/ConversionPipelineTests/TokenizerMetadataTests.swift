// Tokenizer keys against llama.cpp's converter: SentencePiece (validation/fixtures/sentencepiece) and the
// byte-level BPE of the transformers-made fixtures (their keys are checked in GGUFConversionTests).
import Foundation
import Testing
@testable import ConversionPipeline
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
    let expected = try #require(try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/expected.json")))).objectValue)
    #expect(warnings.isEmpty)
    #expect(Set(keys.map(\.0)) == Set(expected.keys))
    for (key, value) in keys {
        let reference = try #require(expected[key])
        switch value {
        case .string(let s): #expect(reference.stringValue == s, "\(key)")
        case .uint32(let v): #expect(reference.intValue == Int(v), "\(key)")
        case .array(.string, let elements): #expect(reference.arrayValue?.compactMap(\.stringValue) == elements.compactMap(\.stringValue), "\(key)")
        case .array(.int32, let elements): #expect(reference.arrayValue?.compactMap(\.intValue) == elements.compactMap(\.integerValue), "\(key)")
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
