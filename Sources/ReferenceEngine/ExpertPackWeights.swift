// Runs a model from the expert-major layout: non-expert weights from OUT.gguf, routed experts from OUT.expert-pack
// (formats/expert-pack.md) through a bounded cache of decoded experts — what an offloading runtime does with
// experts that do not fit in fast memory. Reports the cache's hit rate.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public final class ExpertPackWeights: WeightProvider {
    public let spec: ModelSpec
    let dense: GGUFWeights
    let pack: ExpertPackFile
    /// (layer, expert) → the record's parts by projection: absolute offset, bytes, type, value count.
    private var records: [Int: [Int: [Projection: (offset: Int, bytes: Int, type: QuantType, count: Int)]]] = [:]

    /// Decoded experts kept, at most `capacity`. A batch walks every routed expert of every layer in turn, a cycle
    /// that defeats LRU; so an expert enters a full cache only if it has been used more often than the coldest
    /// resident one (which it then replaces), and hot experts stay resident.
    public let capacity: Int
    private var cache: [Int: [Projection: [Float]]] = [:]
    private var recency: [Int] = []
    private var uses: [Int: Int] = [:]
    /// The expert decoded last, kept even when not admitted, so its up and down projections are not decoded again.
    private var last: (key: Int, parts: [Projection: [Float]])?
    public private(set) var hits = 0, misses = 0
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }

    /// `densePath`: the GGUF of the non-expert tensors; the pack is found beside it (OUT.expert-pack).
    public init(densePath: String, spec: ModelSpec, cacheExperts: Int) throws {
        self.spec = spec
        capacity = max(1, cacheExperts)
        dense = try GGUFWeights(path: densePath, spec: spec, allowMissingExperts: true)
        pack = try ExpertPackFile(path: ExpertPackFile.path(forDense: densePath))
        let path = pack.path
        // What each part must be: one expert's slice of the stacked tensor the table gives this spec.
        var expected: [String: (projection: Projection, ne: [Int])] = [:]
        for plan in spec.tensorLayout.ggufTensors(includeOutputHead: true) {
            if case .routedExperts(_, let projection) = plan.role, plan.part == .weight {
                expected[plan.name] = (projection, Array(plan.dimensions.prefix(2)))
            }
        }
        for record in pack.index.records {
            guard spec.layerKind(record.layer)?.contains(.moe) == true, (0..<spec.routedExpertCount).contains(record.expert) else {
                throw ExpertPackError.invalid(
                    file: path, offset: record.offset, "layer \(record.layer) expert \(record.expert) is not a routed expert of this model")
            }
            var parts: [Projection: (Int, Int, QuantType, Int)] = [:]
            for part in record.parts {
                guard let want = expected[part.tensor], want.ne == part.ne, Projection(rawValue: part.projection) == want.projection,
                    let type = QuantType(rawValue: part.type), type.rowBytes(width: part.ne[0]).map({ $0 * part.ne[1] }) == part.bytes
                else {
                    throw ExpertPackError.invalid(
                        file: path, offset: record.offset,
                        """
                        layer \(record.layer) expert \(record.expert): part \(part.tensor) (\(part.projection), \(part.type), ne \
                        \(part.ne)) 
                        """
                            + "is not one expert of this model's \(part.tensor)")
                }
                parts[want.projection] = (record.offset + part.offset, part.bytes, type, part.ne[0] * part.ne[1])
            }
            records[record.layer, default: [:]][record.expert] = parts
        }
    }

    public func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)] {
        let experts = layer.flatMap { records[$0] }?.values.flatMap { $0.values.map { (pack.map, $0.offset..<($0.offset + $0.bytes)) } }
        return dense.regions(layer: layer) + (experts ?? []).sorted { $0.1.lowerBound < $1.1.lowerBound }
    }

    public func doneWithLayer(_ layer: Int?) { dense.doneWithLayer(layer) }

    public func rowDecoder(_ role: TensorRole) -> WeightRows? {
        if case .routedExpert = role { return nil }  // experts go through the pack's cache
        return dense.rowDecoder(role)
    }

    public func bias(_ role: TensorRole) throws -> [Float]? { try dense.bias(role) }

    public func has(_ role: TensorRole) -> Bool {
        if case .routedExpert(let layer, let expert, let projection) = role { return records[layer]?[expert]?[projection] != nil }
        return dense.has(role)
    }

    private let lock = NSLock()

    /// Safe to call from several threads: the expert cache is used under a lock (decoding too, one expert at a time).
    public func weight(_ role: TensorRole) throws -> [Float] {
        guard case .routedExpert = role else { return try dense.weight(role) }
        return try lock.withLock { try expertWeight(role) }
    }

    private func expertWeight(_ role: TensorRole) throws -> [Float] {
        guard case .routedExpert(let layer, let expert, let projection) = role else { return try dense.weight(role) }
        let key = layer << 32 | expert
        if projection == .gate { uses[key, default: 0] += 1 }
        if let parts = cache[key], let values = parts[projection] {
            if projection == .gate { hits += 1 }
            recency.removeAll { $0 == key }
            recency.append(key)
            return values
        }
        if let last, last.key == key, let values = last.parts[projection] { return values }
        if projection == .gate { misses += 1 }
        guard let layout = records[layer]?[expert] else {
            throw ExpertPackError.invalid(file: pack.path, offset: 0, "no record for layer \(layer) expert \(expert)")
        }
        // One read of the record (its parts are contiguous), decoded whole: gate, up, down.
        var parts: [Projection: [Float]] = [:]
        for (p, part) in layout {
            let values = try QuantCodec.dequantize(
                part.type, Array(pack.map.bytes(in: part.offset..<(part.offset + part.bytes))), count: part.count)
            try checkFinite(values, file: pack.path, tensor: "layer \(layer) expert \(expert) \(p.rawValue)")
            parts[p] = values
        }
        last = (key, parts)
        guard let values = parts[projection] else {
            throw ExpertPackError.invalid(file: pack.path, offset: 0, "layer \(layer) expert \(expert) has no \(projection.rawValue) part")
        }
        if cache.count >= capacity, let victim = recency.min(by: { uses[$0, default: 0] < uses[$1, default: 0] }) {
            // Admit only an expert used more often than the coldest resident one; otherwise serve it uncached.
            guard uses[key, default: 0] > uses[victim, default: 0] else { return values }
            recency.removeAll { $0 == victim }
            cache.removeValue(forKey: victim)
        }
        cache[key] = parts
        recency.append(key)
        return values
    }
}
