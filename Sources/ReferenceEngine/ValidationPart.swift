// `moeq validate --shard k/n -o PART` and `--merge PART…`: one machine's share of a validation run and the exact merge
// (formats/validate-part.md). A part holds every scored position of a contiguous range of chunks; the parts of one
// run concatenate in chunk order into the single machine's scores, so the merged report is that report.
import Foundation
import TensorFormats

public enum ValidationPartError: Error, CustomStringConvertible, Equatable {
    case malformed(path: String, offset: Int, String)
    case mismatch(String)
    public var description: String {
        switch self {
        case let .malformed(path, offset, what): "\(path): byte \(offset): \(what)"
        case let .mismatch(what): "the parts do not come from one run: \(what)"
        }
    }
}

public struct ValidationPart: Equatable {
    public static let magic = Array("MOEQVP01".utf8)
    static let format = "moeq validate part 1"

    /// Shard index k (0-based; `--shard k+1/n`) of n; chunks [firstChunk, firstChunk + scores.chunks) of totalChunks.
    public var shard: Int, shards: Int, firstChunk: Int, totalChunks: Int
    public var ctx: Int
    /// XXH3-64 of all the run's windows (not only this part's): parts of other token streams are refused.
    public var windowsHash: UInt64
    /// How the quant was computed (`exact` / `llama-cpu`); parts that differ are refused.
    public var arithmetic: String
    /// Fingerprints of the quantized and the base model (`ModelFingerprint`); parts of other models are refused.
    public var quantFingerprint: String, baseFingerprint: String
    public var scores: QuantValidation.Scores

    public init(
        shard: Int, shards: Int, firstChunk: Int, totalChunks: Int, ctx: Int, windowsHash: UInt64, arithmetic: String,
        quantFingerprint: String = "", baseFingerprint: String = "", scores: QuantValidation.Scores
    ) {
        self.quantFingerprint = quantFingerprint
        self.baseFingerprint = baseFingerprint
        self.shard = shard
        self.shards = shards
        self.firstChunk = firstChunk
        self.totalChunks = totalChunks
        self.ctx = ctx
        self.windowsHash = windowsHash
        self.arithmetic = arithmetic
        self.scores = scores
    }

    /// Chunks [start, end) of `total` that shard k of n evaluates: contiguous ranges, as even as they divide.
    public static func chunks(shard k: Int, of n: Int, total: Int) -> Range<Int> { (k * total / n)..<((k + 1) * total / n) }

    public func write(to path: String) throws {
        var payload = [UInt8]()
        let n = scores.positions
        payload.reserveCapacity(n * 33)
        for column in [scores.baseNLL, scores.quantNLL, scores.kld, scores.deltaP] {
            for value in column { withUnsafeBytes(of: value.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
        }
        payload += scores.agree.map { $0 ? 1 : 0 }
        let header: JSONValue = [
            "format": .string(Self.format), "shard": .integer(Int64(shard)), "shards": .integer(Int64(shards)),
            "first_chunk": .integer(Int64(firstChunk)), "chunks": .integer(Int64(scores.chunks)),
            "total_chunks": .integer(Int64(totalChunks)), "ctx": .integer(Int64(ctx)), "positions": .integer(Int64(n)),
            "windows_xxh3": .string(ContentHash.hex(windowsHash)), "arithmetic": .string(arithmetic),
            "quant_fingerprint": .string(quantFingerprint), "base_fingerprint": .string(baseFingerprint),
            "kld_from_record": .bool(scores.kldFromRecord), "payload_bytes": .integer(Int64(payload.count)),
            "payload_xxh3": .string(ContentHash.hex(ContentHash.xxh3(payload))),
        ]
        try FramedRecord.write(magic: Self.magic, header: header, payload: payload, level: 6, to: path)
    }

    struct Header: Decodable {
        let format: String, arithmetic: String, windowsXXH3: String, payloadXXH3: String, quantFingerprint: String, baseFingerprint: String
        let shard: Int, shards: Int, firstChunk: Int, chunks: Int, totalChunks: Int, ctx: Int, positions: Int, payloadBytes: Int
        let kldFromRecord: Bool
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, arithmetic, shard, shards, chunks, ctx, positions
            case windowsXXH3 = "windows_xxh3", payloadXXH3 = "payload_xxh3", firstChunk = "first_chunk", totalChunks = "total_chunks"
            case payloadBytes = "payload_bytes", kldFromRecord = "kld_from_record"
            case quantFingerprint = "quant_fingerprint", baseFingerprint = "base_fingerprint"
        }
    }

    /// Reads a part; sizes are checked against each other and the file before anything is allocated.
    public static func read(path: String) throws -> ValidationPart {
        func fail(_ offset: Int, _ what: String) -> ValidationPartError { .malformed(path: path, offset: offset, what) }
        let (map, header, end) = try FramedRecord.open(path, magic: magic, kind: "validate part", as: Header.self, fail: fail)
        guard header.format == format else { throw fail(16, "format is not \"\(format)\"") }
        guard (1...1_000_000).contains(header.shards), (0..<header.shards).contains(header.shard),
            (0...(1 << 30)).contains(header.totalChunks),
            chunks(shard: header.shard, of: header.shards, total: header.totalChunks)
                == header.firstChunk..<(header.firstChunk + header.chunks)
        else {
            throw fail(
                16,
                "shard index \(header.shard) of \(header.shards) with chunks \(header.firstChunk)+\(header.chunks) "
                    + "of \(header.totalChunks) "
                    + "is not a shard's range")
        }
        guard (4...(1 << 20)).contains(header.ctx), header.positions == header.chunks * (header.ctx - 1 - header.ctx / 2) else {
            throw fail(16, "positions \(header.positions) ≠ chunks × (ctx − 1 − ctx/2) for ctx \(header.ctx)")
        }
        guard header.payloadBytes == header.positions * 33 else { throw fail(16, "payload_bytes ≠ positions × 33") }
        guard let hash = UInt64(header.windowsXXH3, radix: 16) else { throw fail(16, "windows_xxh3 is not hex") }
        let payload = try FramedRecord.payload(map, start: end, bytes: header.payloadBytes, xxh3: header.payloadXXH3, fail: fail)
        var scores = QuantValidation.Scores()
        scores.chunks = header.chunks
        scores.kldFromRecord = header.kldFromRecord
        let n = header.positions
        try payload.withUnsafeBytes { raw in
            var words = BinaryReader(raw)
            var columns: [[Double]] = []
            for name in ["base NLL", "quant NLL", "KLD", "Δp"] {
                var column: [Double] = []
                column.reserveCapacity(n)
                for p in 0..<n {
                    let value = Double(bitPattern: try words.u64())
                    guard value.isFinite, name == "Δp" ? abs(value) <= 1 : value >= 0 else {
                        throw fail(end, "position \(p): \(name) \(value) is out of range (payload byte \(words.position - 8))")
                    }
                    column.append(value)
                }
                columns.append(column)
            }
            scores.baseNLL = columns[0]; scores.quantNLL = columns[1]; scores.kld = columns[2]; scores.deltaP = columns[3]
            for p in 0..<n {
                let flag = try words.u8()
                guard flag <= 1 else { throw fail(end, "position \(p): agreement flag \(flag) is not 0 or 1") }
                scores.agree.append(flag == 1)
            }
        }
        return ValidationPart(
            shard: header.shard, shards: header.shards, firstChunk: header.firstChunk, totalChunks: header.totalChunks, ctx: header.ctx,
            windowsHash: hash, arithmetic: header.arithmetic, quantFingerprint: header.quantFingerprint,
            baseFingerprint: header.baseFingerprint, scores: scores)
    }

    /// The single run's scores from all n parts of it (any order; each shard exactly once).
    public static func merge(_ parts: [(path: String, part: ValidationPart)]) throws -> QuantValidation.Scores {
        guard let first = parts.first?.part else { throw ValidationPartError.mismatch("no parts given") }
        for (path, part) in parts {
            guard part.shards == first.shards, part.totalChunks == first.totalChunks, part.ctx == first.ctx else {
                throw ValidationPartError.mismatch(
                    "\(path) is shard \(part.shard + 1) of \(part.shards) over \(part.totalChunks) chunks of \(part.ctx); "
                        + "the first part is of "
                        + "\(first.shards) over \(first.totalChunks) chunks of \(first.ctx)")
            }
            guard part.windowsHash == first.windowsHash else {
                throw ValidationPartError.mismatch("\(path) scored other token ids (windows_xxh3 differs from the first part's)")
            }
            guard part.quantFingerprint == first.quantFingerprint, part.baseFingerprint == first.baseFingerprint else {
                throw ValidationPartError.mismatch(
                    "\(path) scored another \(part.quantFingerprint == first.quantFingerprint ? "base model" : "quantized model") "
                        + "than the first part (its fingerprint differs)")
            }
            guard part.arithmetic == first.arithmetic, part.scores.kldFromRecord == first.scores.kldFromRecord else {
                throw ValidationPartError.mismatch("\(path) was computed another way (arithmetic or base-logits record differ)")
            }
        }
        let byShard = Dictionary(grouping: parts, by: \.part.shard)
        if let duplicate = byShard.first(where: { $0.value.count > 1 }) {
            throw ValidationPartError.mismatch(
                "shard \(duplicate.key + 1) is given twice: " + duplicate.value.map(\.path).joined(separator: ", "))
        }
        let missing = (0..<first.shards).filter { byShard[$0] == nil }
        guard missing.isEmpty else {
            throw ValidationPartError.mismatch(
                "shard(s) \(missing.prefix(10).map { String($0 + 1) }.joined(separator: ", ")) of \(first.shards) missing")
        }
        var scores = QuantValidation.Scores()
        scores.kldFromRecord = first.scores.kldFromRecord
        for k in 0..<first.shards { if let part = byShard[k]?.first { scores.append(part.part.scores) } }
        return scores
    }
}

/// What tells one model file or checkpoint directory from another, cheaply: XXH3-64 of its size and its first 4 MiB
/// and last 1 MiB (a GGUF's header and tensor infos, or each safetensors file's header, where the types and shapes
/// are), file by file in name order for a directory.
public enum ModelFingerprint {
    public static func of(_ path: String) throws -> String {
        var names: [String] = [path]
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            names = (try FileManager.default.contentsOfDirectory(atPath: path)).sorted().map {
                (path as NSString).appendingPathComponent($0)
            }
        }
        let hasher = ContentHasher()
        for name in names {
            var dir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: name, isDirectory: &dir), !dir.boolValue else { continue }
            let file = try PositionalFile(path: name)
            defer { file.close() }
            let size = try file.size()
            Array(((name as NSString).lastPathComponent + "\u{0}\(size)\u{0}").utf8).withUnsafeBytes { hasher.update($0) }
            for range in [0..<min(size, 4 << 20), max(0, size - (1 << 20))..<size] where !range.isEmpty {
                var bytes = [UInt8](repeating: 0, count: range.count)
                try bytes.withUnsafeMutableBytes { try file.readExactly(into: $0, at: range.lowerBound) }
                bytes.withUnsafeBytes { hasher.update($0) }
            }
        }
        return ContentHash.hex(hasher.digest)
    }
}
