// A minimal byte-level BPE tokenizer.json (256 byte tokens + special tokens) that HF `tokenizers` loads.
import ModelCatalog
import TensorFormats

public enum SyntheticTokenizer {
    public static let specialTokens = ["<|begin_of_text|>", "<|end_of_text|>"]

    /// The tokenizer.json document.
    public static func json(spec: ModelSpec) -> JSONValue {
        var vocab = JSONObject()
        for byte in 0..<256 { vocab[String(ByteLevelAlphabet.characters[byte])] = .integer(Int64(byte)) }
        var added: [JSONValue] = []
        for (i, token) in specialTokens.enumerated() {
            vocab[token] = .integer(Int64(256 + i))
            added.append([
                "id": .integer(Int64(256 + i)), "content": .string(token), "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true,
            ])
        }
        let byteLevel: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        return [
            "version": "1.0", "truncation": nil, "padding": nil, "added_tokens": .array(added), "normalizer": nil,
            "pre_tokenizer": byteLevel, "post_processor": byteLevel, "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
                "end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": .object(vocab), "merges": [],
            ],
        ]
    }
}
