// Seeded mutation fuzzing: every mutated header ends in a typed error or a valid parse, never a crash.
import Testing
@testable import TensorFormats

/// A small deterministic generator (xorshift64*), independent of the code under test.
private struct Xorshift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

private let seedHeader =
    #"{"__metadata__":{"format":"pt"},"#
    + #""model.layers.0.mlp.experts.3.down_proj.weight":{"dtype":"BF16","shape":[4,8],"data_offsets":[0,64]},"#
    + #""model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[64,96]},"#
    + #""x.weight_scale_inv":{"dtype":"F32","shape":[1,1],"data_offsets":[96,100]}}"#

/// Byte-level mutations that hit lengths, digits, quotes and structure.
private func mutate(_ bytes: inout [UInt8], _ random: inout Xorshift) {
    let interesting: [[UInt8]] = [
        "-1", "0", "18446744073709551615", "9223372036854775807", "1e309", "\"", "{", "}", "[", "]",
        ",", ":", "null", "\"F8_E4M3\"", "\"F64\"", "\"__metadata__\"", "\\u0000", "\u{FF}",
    ].map { Array($0.utf8) }
    for _ in 0...random.below(3) {
        guard !bytes.isEmpty else { bytes = [0x7B]; return }
        let at = random.below(bytes.count)
        switch random.below(7) {
        case 0: bytes[at] = UInt8(truncatingIfNeeded: random.next())
        case 1: bytes[at] ^= UInt8(1 << random.below(8))
        case 2: bytes.remove(at: at)
        case 3: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
        case 4: bytes.insert(contentsOf: interesting[random.below(interesting.count)], at: at)
        case 5:  // replace a digit run with another number
            if bytes[at] >= 0x30 && bytes[at] <= 0x39 { bytes.replaceSubrange(at...at, with: interesting[random.below(4)]) }
        default: bytes.removeSubrange(at..<min(bytes.count, at + random.below(16)))
        }
    }
}

@Test func tenThousandMutatedHeadersEndInTypedErrorsOrValidParses() {
    var random = Xorshift(state: 0x5EED_1234_ABCD_0001)
    var valid = 0, rejected = 0
    var kinds: Set<String> = []
    for iteration in 0..<12_000 {
        var json = Array(seedHeader.utf8)
        mutate(&json, &random)
        var dataBytes = 100
        if random.below(10) == 0 { dataBytes = random.below(200) }
        var file = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json + [UInt8](repeating: 0, count: dataBytes)
        if random.below(20) == 0 {  // corrupt the length prefix itself
            file[random.below(8)] = UInt8(truncatingIfNeeded: random.next())
        }
        if random.below(50) == 0 { file = Array(file.prefix(random.below(file.count))) }
        do {
            let header = try parseHeader(file)
            // A valid parse must describe a consistent layout.
            var end = 0
            for tensor in header.tensors {
                #expect(tensor.dataBegin == end, "iteration \(iteration)")
                end = tensor.dataEnd
            }
            #expect(header.dataStart + end == file.count, "iteration \(iteration)")
            valid += 1
        } catch {
            rejected += 1
            kinds.insert(String(describing: error).components(separatedBy: "(").first ?? "")
            #expect(!error.description.isEmpty)
        }
    }
    #expect(valid + rejected == 12_000)
    #expect(rejected > 5_000, "mutations should mostly break the header")
    #expect(kinds.count >= 8, "mutations should reach many validation rules, reached \(kinds.sorted())")
}
