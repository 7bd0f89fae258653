// A base model's next-token distributions at validate's scored positions, kept compactly so that several quants
// can be checked against one base run (and a base too large to run twice is run once): per position the
// log-probability of the token that follows and the top-k log-probabilities with their ids, zstd-compressed.
// File format: formats/base-logits.md.
import Foundation
import TensorFormats

public enum BaseLogitsError: Error, Sendable, CustomStringConvertible {
    case malformed(path: String, offset: Int, String)
    case mismatch(path: String, String)
    public var description: String {
        switch self {
        case let .malformed(path, offset, what): "\(path): byte \(offset): \(what)"
        case let .mismatch(path, what): "\(path) was made for other input: \(what)"
        }
    }
}

public struct BaseLogitRecord: Sendable {
    public static let magic = Array("MOEQBL01".utf8)

    public let vocabulary: Int, context: Int, topK: Int
    /// XXH3-64 of the scored windows' token ids (int32 LE, BOS substitution applied), chunk after chunk.
    public let windowsHash: UInt64
    public var chunks = 0
    public var targetLogProbabilities: [Float] = []
    public var ids: [UInt32] = []
    public var logProbabilities: [Float] = []
    /// What the approximation cost when the file was written (KLD of the top-k + tail form vs the full vocabulary).
    public var approximation: JSONValue = .null

    public var positions: Int { targetLogProbabilities.count }

    public init(vocabulary: Int, context: Int, topK: Int, windowsHash: UInt64) {
        self.vocabulary = vocabulary
        self.context = context
        self.topK = topK
        self.windowsHash = windowsHash
    }

    /// Appends one scored position from the base's full log-softmax row.
    mutating func append(_ lb: [Double], target: Int) {
        targetLogProbabilities.append(Float(lb[target]))
        let top = lb.indices.sorted { lb[$0] > lb[$1] || (lb[$0] == lb[$1] && $0 < $1) }.prefix(topK)
        for i in top { ids.append(UInt32(i)); logProbabilities.append(Float(lb[i])) }
    }

    /// Throws unless the record was made from exactly these windows for a model of this vocabulary.
    public func check(windows: [[Int]], vocabulary expected: Int, path: String) throws {
        guard vocabulary == expected else {
            throw BaseLogitsError.mismatch(path: path, "vocabulary \(vocabulary), the model has \(expected)")
        }
        guard context == (windows.first?.count ?? 0), chunks == windows.count else {
            throw BaseLogitsError.mismatch(
                path: path, "\(chunks) chunks × \(context) tokens, this run has \(windows.count) × \(windows.first?.count ?? 0)")
        }
        guard windowsHash == QuantValidation.windowsHash(windows) else {
            throw BaseLogitsError.mismatch(path: path, "other token ids (windows_xxh3 differs)")
        }
        guard positions == chunks * (context - 1 - context / 2) else {
            throw BaseLogitsError.malformed(path: path, offset: 16, "\(positions) positions for \(chunks) chunks of \(context)")
        }
    }

    /// Top-1 id of position `p`.
    func argmax(_ p: Int) -> Int { Int(ids[p * topK]) }

    /// KL(base ‖ quant) at position `p` with the base's tail beyond the top k merged into one outcome. By the
    /// data-processing inequality this never exceeds the full-vocabulary KLD.
    func divergence(_ p: Int, quant lq: [Double]) -> Double {
        var kld = 0.0, baseTop = 0.0, quantTop = 0.0
        for j in 0..<topK {
            let i = Int(ids[p * topK + j]), lp = Double(logProbabilities[p * topK + j])
            let probability = exp(lp)
            kld += probability * (lp - lq[i])
            baseTop += probability
            quantTop += exp(lq[i])
        }
        let baseTail = 1 - baseTop, quantTail = max(1 - quantTop, Double.leastNormalMagnitude)
        if baseTail > 1e-12 { kld += baseTail * (log(baseTail) - log(quantTail)) }
        return max(kld, 0)
    }

    // MARK: File

    public func write(to path: String) throws {
        var payload = [UInt8]()
        payload.reserveCapacity(positions * (4 + 8 * topK))
        func put(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { payload.append(contentsOf: $0) } }
        for p in 0..<positions {
            put(targetLogProbabilities[p].bitPattern)
            for j in 0..<topK { put(ids[p * topK + j]) }
            for j in 0..<topK { put(logProbabilities[p * topK + j].bitPattern) }
        }
        let header: JSONValue = [
            "format": "moeq base logits 1", "vocabulary": .integer(Int64(vocabulary)), "ctx": .integer(Int64(context)),
            "chunks": .integer(Int64(chunks)), "positions": .integer(Int64(positions)), "top_k": .integer(Int64(topK)),
            "windows_xxh3": .string(ContentHash.hex(windowsHash)), "payload_bytes": .integer(Int64(payload.count)),
            "payload_xxh3": .string(ContentHash.hex(ContentHash.xxh3(payload))),
            "approximation": approximation,
        ]
        try FramedRecord.write(magic: BaseLogitRecord.magic, header: header, payload: payload, level: 9, to: path)
    }

    /// The header as written (formats/base-logits.md).
    struct Header: Decodable {
        let format: String
        let vocabulary: Int, ctx: Int, chunks: Int, positions: Int, topK: Int, payloadBytes: Int
        let windowsXXH3: String, payloadXXH3: String
        let approximation: JSONValue?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, vocabulary, ctx, chunks, positions, approximation
            case topK = "top_k", payloadBytes = "payload_bytes", windowsXXH3 = "windows_xxh3", payloadXXH3 = "payload_xxh3"
        }
    }

    /// Reads a record; the payload's size is checked against the file and the header before anything is allocated.
    public static func read(path: String) throws -> BaseLogitRecord {
        func fail(_ offset: Int, _ what: String) -> BaseLogitsError { .malformed(path: path, offset: offset, what) }
        let (map, header, end) = try FramedRecord.open(path, magic: magic, kind: "base-logits file", as: Header.self, fail: fail)
        let k = header.topK, positions = header.positions, vocabulary = header.vocabulary
        guard header.format == "moeq base logits 1" else { throw fail(16, "format is not \"moeq base logits 1\"") }
        guard (1...65_536).contains(k), (1...(1 << 24)).contains(vocabulary), k <= vocabulary else {
            throw fail(16, "top_k \(k) and vocabulary \(vocabulary) must be in 1…65536 and 1…16777216, top_k ≤ vocabulary")
        }
        guard (2...(1 << 24)).contains(header.ctx), header.chunks >= 0, positions >= 0, positions <= 1 << 31 / (4 + 8 * k) else {
            throw fail(16, "ctx \(header.ctx), chunks \(header.chunks) or positions \(positions) are out of range")
        }
        guard header.payloadBytes == positions * (4 + 8 * k) else {
            throw fail(16, "payload_bytes \(header.payloadBytes) ≠ positions × (4 + 8·top_k)")
        }
        guard let hash = UInt64(header.windowsXXH3, radix: 16) else { throw fail(16, "windows_xxh3 is not hex") }
        var record = BaseLogitRecord(vocabulary: vocabulary, context: header.ctx, topK: k, windowsHash: hash)
        record.chunks = header.chunks
        record.approximation = header.approximation ?? .null
        let payload = try FramedRecord.payload(map, start: end, bytes: header.payloadBytes, xxh3: header.payloadXXH3, fail: fail)
        try payload.withUnsafeBytes { raw in
            var words = BinaryReader(raw)
            for p in 0..<positions {
                let target = try words.f32()
                guard target.isFinite, target <= 0 else {
                    throw fail(end, "position \(p): log-probability \(target) is not a finite value ≤ 0")
                }
                record.targetLogProbabilities.append(target)
                for _ in 0..<k {
                    let id = try words.u32()
                    guard Int(id) < vocabulary else {
                        throw fail(end, "token id \(id) ≥ vocabulary \(vocabulary) in the payload (at payload byte \(words.position - 4))")
                    }
                    record.ids.append(id)
                }
                for _ in 0..<k {
                    let value = try words.f32()
                    guard value.isFinite, value <= 0 else {
                        throw fail(end, "position \(p): log-probability \(value) is not a finite value ≤ 0")
                    }
                    record.logProbabilities.append(value)
                }
            }
        }
        return record
    }
}
