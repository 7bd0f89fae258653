// GPT-2's byte-level BPE alphabet: every byte as a printable character (printable Latin-1 bytes as themselves, the
// rest as U+0100…), how byte-level tokenizer.json vocabularies and llama.cpp's `gpt2` tokens spell raw bytes.

public enum ByteLevelAlphabet {
    /// `characters[b]` spells byte `b`.
    public static let characters: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var next = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            codes.append(256 + next)
            next += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (byte, code) in zip(printable, codes) { table[byte] = Character(Unicode.Scalar(UInt32(code)) ?? " ") }
        return table
    }()

    /// Raw bytes in the alphabet's spelling.
    public static func spell(_ bytes: [UInt8]) -> String { String(bytes.map { characters[Int($0)] }) }
}
