// Runs a model from the expert-major layout: non-expert weights from OUT.gguf, routed experts from OUT.expert-pack
// (formats/expert-pack.md) through a bounded cache of decoded experts — what an offloading runtime does with
// experts that do not fit in fast memory. Reports the cache's hit rate.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public enum ExpertPackError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, offset: Int, String)
    public var description: String {
        switch self { case let .invalid(file, offset, what): "\(file): byte \(offset): \(what)" }
    }
}

public final class ExpertPackWeights: WeightProvider {
    public let spec: ModelSpec
    let dense: GGUFWeights
    let pack: MappedFile
    let packPath: String
    /// HF expert weight name → (layer, expert, projection index within the record).
    private var expertNames: [String: (layer: Int, expert: Int, part: Int)] = [:]
    /// (layer, expert) → the record's parts: offset, type, value count.
    private var records: [Int: [Int: [(offset: Int, bytes: Int, type: QuantType, count: Int)]]] = [:]

    /// Decoded experts kept, at most `capacity`. A batch walks every routed expert of every layer in turn, a cycle
    /// that defeats LRU; so an expert enters a full cache only if it has been used more often than the coldest
    /// resident one (which it then replaces), and hot experts stay resident.
    public let capacity: Int
    private var cache: [Int: [[Float]]] = [:]
    private var recency: [Int] = []
    private var uses: [Int: Int] = [:]
    /// The expert decoded last, kept even when not admitted, so its up and down projections are not decoded again.
    private var last: (key: Int, parts: [[Float]])?
    public private(set) var hits = 0, misses = 0
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }

    /// `densePath`: the GGUF of the non-expert tensors; the pack is found beside it (OUT.expert-pack).
    public init(densePath: String, spec: ModelSpec, cacheExperts: Int) throws {
        self.spec = spec
        capacity = max(1, cacheExperts)
        dense = try GGUFWeights(path: densePath, spec: spec)
        packPath = (densePath.hasSuffix(".gguf") ? String(densePath.dropLast(5)) : densePath) + ".expert-pack"
        pack = try MappedFile(path: packPath)
        let all = pack.bytes
        guard pack.size >= 16, Array(all[0..<8]) == Array("MOEQXPK1".utf8) else { throw ExpertPackError.invalid(file: packPath, offset: 0, "not an expert pack (magic MOEQXPK1)") }
        var length = 0
        for b in 0..<8 { length |= Int(all[8 + b]) << (8 * b) }
        guard length >= 0, 16 + length <= pack.size else { throw ExpertPackError.invalid(file: packPath, offset: 8, "index length \(length) exceeds the file") }
        let index: JSONValue
        do { index = try JSONParser.parse(Array(all[16..<(16 + length)])) } catch { throw ExpertPackError.invalid(file: packPath, offset: 16, "index: \(error)") }
        // GGUF stacked tensor name + projection order → the HF names of each expert's weights.
        var stackedNames: [String: [String]] = [:]
        for plan in spec.ggufTensors(has: { _ in true }) { if case .stacked(let names) = plan.source { stackedNames[plan.name] = names } }
        for record in index["records"]?.arrayValue ?? [] {
            guard let layer = record["layer"]?.intValue, let expert = record["expert"]?.intValue, let start = record["offset"]?.intValue,
                  let parts = record["parts"]?.arrayValue else { throw ExpertPackError.invalid(file: packPath, offset: 16, "a record lacks layer/expert/offset/parts") }
            var decoded: [(Int, Int, QuantType, Int)] = []
            for (p, part) in parts.enumerated() {
                guard let tensor = part["tensor"]?.stringValue, let typeName = part["type"]?.stringValue, let type = QuantType(rawValue: typeName),
                      let offset = part["offset"]?.intValue, let bytes = part["bytes"]?.intValue,
                      let ne = part["ne"]?.arrayValue?.compactMap(\.intValue), ne.count == 2,
                      start + offset + bytes <= pack.size, let names = stackedNames[tensor], expert < names.count else {
                    throw ExpertPackError.invalid(file: packPath, offset: start, "layer \(layer) expert \(expert): part \(p) is malformed or outside the file")
                }
                decoded.append((start + offset, bytes, type, ne[0] * ne[1]))
                expertNames[names[expert]] = (layer, expert, p)
            }
            records[layer, default: [:]][expert] = decoded
        }
    }

    public func has(_ name: String) -> Bool { dense.has(name) || expertNames[name] != nil }

    public func weight(_ name: String) throws -> [Float] {
        guard let (layer, expert, part) = expertNames[name] else { return try dense.weight(name) }
        let key = layer << 32 | expert
        if part == 0 { uses[key, default: 0] += 1 }
        if let parts = cache[key] {
            if part == 0 { hits += 1 }
            recency.removeAll { $0 == key }
            recency.append(key)
            return parts[part]
        }
        if let last, last.key == key { return last.parts[part] }
        if part == 0 { misses += 1 }
        guard let layout = records[layer]?[expert] else { throw ExpertPackError.invalid(file: packPath, offset: 0, "no record for layer \(layer) expert \(expert)") }
        // One read of the record (its parts are contiguous), decoded whole: gate, up, down.
        let parts = try layout.map { try QuantCodec.dequantize($0.type, Array(pack.bytes(in: $0.offset..<($0.offset + $0.bytes))), count: $0.count) }
        last = (key, parts)
        if cache.count >= capacity, let victim = recency.min(by: { uses[$0, default: 0] < uses[$1, default: 0] }) {
            // Admit only an expert used more often than the coldest resident one; otherwise serve it uncached.
            guard uses[key, default: 0] > uses[victim, default: 0] else { return parts[part] }
            recency.removeAll { $0 == victim }
            cache.removeValue(forKey: victim)
        }
        cache[key] = parts
        recency.append(key)
        return parts[part]
    }
}
