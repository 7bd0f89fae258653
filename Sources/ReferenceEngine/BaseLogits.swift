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
        guard vocabulary == expected else { throw BaseLogitsError.mismatch(path: path, "vocabulary \(vocabulary), the model has \(expected)") }
        guard context == (windows.first?.count ?? 0), chunks == windows.count else {
            throw BaseLogitsError.mismatch(path: path, "\(chunks) chunks × \(context) tokens, this run has \(windows.count) × \(windows.first?.count ?? 0)")
        }
        guard windowsHash == QuantValidation.windowsHash(windows) else { throw BaseLogitsError.mismatch(path: path, "other token ids (windows_xxh3 differs)") }
        guard positions == chunks * (context - 1 - context / 2) else { throw BaseLogitsError.malformed(path: path, offset: 16, "\(positions) positions for \(chunks) chunks of \(context)") }
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
        let frame = try Zstd.compress(payload, level: 9)
        let header: JSONValue = [
            "format": "moeq base logits 1", "vocabulary": .integer(Int64(vocabulary)), "ctx": .integer(Int64(context)),
            "chunks": .integer(Int64(chunks)), "positions": .integer(Int64(positions)), "top_k": .integer(Int64(topK)),
            "windows_xxh3": .string(ContentHash.hex(windowsHash)), "payload_bytes": .integer(Int64(payload.count)),
            "payload_xxh3": .string(ContentHash.hex(ContentHash.xxh3(payload))),
            "approximation": approximation,
        ]
        let json = Array(header.prettyPrinted().utf8)
        var bytes = BaseLogitRecord.magic
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += json + frame
        try AtomicFile.write(bytes, to: path)
    }

    public static func read(path: String) throws -> BaseLogitRecord {
        guard let data = FileManager.default.contents(atPath: path) else { throw BaseLogitsError.malformed(path: path, offset: 0, "cannot be read") }
        let bytes = [UInt8](data)
        guard bytes.count >= 16, Array(bytes[0..<8]) == magic else { throw BaseLogitsError.malformed(path: path, offset: 0, "not a moeq base-logits file (magic MOEQBL01)") }
        let length = bytes[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(bytes.count - 16) else { throw BaseLogitsError.malformed(path: path, offset: 8, "header length \(length) exceeds the file") }
        let end = 16 + Int(length)
        let header: JSONValue
        do { header = try JSONParser.parse(Array(bytes[16..<end])) } catch { throw BaseLogitsError.malformed(path: path, offset: 16, "header: \(error)") }
        func int(_ key: String) throws -> Int {
            guard let v = header[key]?.intValue, v >= 0 else { throw BaseLogitsError.malformed(path: path, offset: 16, "header lacks \(key)") }
            return v
        }
        let k = try int("top_k"), positions = try int("positions"), payloadBytes = try int("payload_bytes")
        guard k >= 1, payloadBytes == positions * (4 + 8 * k) else { throw BaseLogitsError.malformed(path: path, offset: 16, "payload_bytes \(payloadBytes) ≠ positions × (4 + 8·top_k)") }
        guard let hex = header["windows_xxh3"]?.stringValue, let hash = UInt64(hex, radix: 16) else { throw BaseLogitsError.malformed(path: path, offset: 16, "header lacks windows_xxh3") }
        var record = BaseLogitRecord(vocabulary: try int("vocabulary"), context: try int("ctx"), topK: k, windowsHash: hash)
        record.chunks = try int("chunks")
        record.approximation = header["approximation"] ?? .null
        let payload: [UInt8]
        do { payload = try Zstd.decompress(Array(bytes[end...]), limit: payloadBytes) } catch { throw BaseLogitsError.malformed(path: path, offset: end, "payload: \(error)") }
        guard payload.count == payloadBytes else { throw BaseLogitsError.malformed(path: path, offset: end, "payload is \(payload.count) bytes, header says \(payloadBytes)") }
        guard header["payload_xxh3"]?.stringValue == ContentHash.hex(ContentHash.xxh3(payload)) else {
            throw BaseLogitsError.malformed(path: path, offset: end, "payload XXH3 differs from the header's payload_xxh3")
        }
        func word(_ o: Int) -> UInt32 { UInt32(payload[o]) | UInt32(payload[o + 1]) << 8 | UInt32(payload[o + 2]) << 16 | UInt32(payload[o + 3]) << 24 }
        var o = 0
        for _ in 0..<positions {
            record.targetLogProbabilities.append(Float(bitPattern: word(o))); o += 4
            for _ in 0..<k {
                let id = word(o)
                guard Int(id) < record.vocabulary else { throw BaseLogitsError.malformed(path: path, offset: end, "token id \(id) ≥ vocabulary \(record.vocabulary) in the payload (at payload byte \(o))") }
                record.ids.append(id); o += 4
            }
            for _ in 0..<k { record.logProbabilities.append(Float(bitPattern: word(o))); o += 4 }
        }
        return record
    }
}
