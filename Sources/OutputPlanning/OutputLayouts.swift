// Where every byte of every output file goes, computed from the plan before anything is written (formats/expert-pack.md,
// formats/shard-part.md):
//   stacked      — one GGUF, llama.cpp's 3-D expert tensors (the plan's own layout);
//   split        — llama.cpp's multi-file GGUF: file 1 holds the metadata and every tensor but the routed experts (what
//                  the GPU tier loads), file 2 the routed experts (what stays in RAM / mmap);
//   expert-major — a GGUF of the non-expert tensors plus an expert pack: each expert's gate/up/down blocks contiguous and
//                  page-aligned, experts of a layer hot → cold by routing counts, with an index;
//   shard parts  — a deterministic, byte-balanced run of tensors per machine, merged later.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public enum OutputLayout: String, Sendable, CaseIterable {
    case stacked, split, expertMajor = "expert-major"
}

extension ConversionPlan {
    /// True for tensors holding routed experts' weights (what the split and expert-major layouts move out; gpt-oss's
    /// small expert biases stay with the dense tensors).
    public var routedExpertMask: [Bool] { tensors.map { $0.role.category == .routedExperts && $0.part == .weight } }

    /// A GGUF layout of the plan's tensors at `indices` with `metadata`.
    public func fileLayout(_ indices: [Int], metadata: [(GGUFKey, GGUFValue)]) throws -> GGUFLayout {
        try GGUFLayout(
            metadata: metadata,
            tensors: indices.map { GGUFTensorSpec(name: tensors[$0].name, dimensions: recipe.dimensions(of: tensors[$0]), type: types[$0]) }
        )
    }

    // MARK: split

    /// llama.cpp's split names: OUT-00001-of-00002.gguf, OUT-00002-of-00002.gguf.
    public static func splitPaths(output: String) -> [String] { (1...2).map { GGUFSplitName.path(output, number: $0, of: 2) } }

    /// The two files of a split conversion: (tensor indices, layout) per file.
    public func splitLayouts() throws -> [(indices: [Int], layout: GGUFLayout)] {
        let isRouted = routedExpertMask
        let groups = [tensors.indices.filter { !isRouted[$0] }, tensors.indices.filter { isRouted[$0] }]
        return try groups.enumerated().map { number, indices in
            let keys: [(GGUFKey, GGUFValue)] = [
                (.splitNumber, .uint16(UInt16(number))), (.splitCount, .uint16(2)),
                (.splitTensorCount, .int32(Int32(clamping: tensors.count))),
            ]
            return (indices, try fileLayout(indices, metadata: (number == 0 ? metadata : []) + keys))
        }
    }

    // MARK: expert-major

    /// OUT.gguf → OUT.expert-pack.
    public static func packPath(output: String) -> String { ExpertPackFile.path(forDense: output) }

    /// The GGUF of an expert-major conversion: every tensor but the routed experts.
    public func denseLayout() throws -> (indices: [Int], layout: GGUFLayout) {
        let isRouted = routedExpertMask
        let indices = tensors.indices.filter { !isRouted[$0] }
        return (indices, try fileLayout(indices, metadata: metadata))
    }

    /// Records per layer, hottest first when `hits[layer][expert]` (routing counts) are given, else by index; each record
    /// starts on an `alignment` boundary.
    public func packLayout(alignment: Int, hits: [Int: [Int]], denseFile: String) throws -> ExpertPackLayout {
        var byLayer: [Int: [(index: Int, projection: Projection)]] = [:]
        let isRouted = routedExpertMask
        for (i, tensor) in tensors.enumerated() where isRouted[i] {
            guard let layer = tensor.layer, let projection = tensor.role.projection else { continue }
            byLayer[layer, default: []].append((i, projection))
        }
        var drafts: [ExpertPackLayout.Draft] = []
        for layer in byLayer.keys.sorted() {
            let members = byLayer[layer] ?? []
            guard let experts = members.first.map({ tensors[$0.index].dimensions.count == 3 ? tensors[$0.index].dimensions[2] : 1 }) else {
                continue
            }
            let counts = hits[layer] ?? []
            func count(_ e: Int) -> Int { e < counts.count ? counts[e] : 0 }
            for e in (0..<experts).sorted(by: { (count($0), $1) > (count($1), $0) }) {
                var parts: [ExpertPackLayout.Part] = []
                var within = 0
                for (i, projection) in members {
                    let tensor = tensors[i], type = types[i]
                    guard let rowBytes = type.rowBytes(width: tensor.rowWidth) else {
                        throw PlanningError.shape(tensor: tensor.name, reason: "width \(tensor.rowWidth) does not fit \(type.rawValue)")
                    }
                    let bytes = rowBytes * tensor.dimensions[1]
                    parts.append(
                        .init(
                            projection: projection.rawValue, tensor: tensor.name, type: type,
                            dimensions: Array(tensor.dimensions.prefix(2)),
                            offset: within, bytes: bytes))
                    within += bytes
                }
                drafts.append(.init(layer: layer, expert: e, hits: count(e), parts: parts, bytes: within))
            }
        }
        return ExpertPackLayout(
            drafts: drafts, alignment: alignment, modelType: spec.modelType, recipe: recipe.rawValue, denseFile: denseFile)
    }

    // MARK: shard parts

    /// The shard (1-based) that converts each tensor of `layout`: the tensors are cut into `count` contiguous runs of
    /// about equal bytes (a tensor goes to the shard its middle byte falls in). Depends only on the layout.
    public static func shardAssignment(_ layout: GGUFLayout, shards count: Int) -> [Int] {
        let total = max(layout.tensors.reduce(0) { $0 + $1.byteCount }, 1)
        var before = 0
        return layout.tensors.map { tensor in
            let middle = before + tensor.byteCount / 2
            before += tensor.byteCount
            return min(count, middle * count / total + 1)
        }
    }

    /// The part file name for shard k of n of `output`.
    public static func partPath(output: String, shard: Int, of count: Int) -> String { "\(output).part-\(shard)-of-\(count)" }
}

/// Where everything goes in an expert pack, computed before any byte is written.
public struct ExpertPackLayout: Sendable {
    public struct Part: Sendable {
        public let projection: String, tensor: String, type: QuantType, dimensions: [Int], offset: Int, bytes: Int
    }
    public struct Record: Sendable {
        public let layer: Int, expert: Int, hits: Int, offset: Int, bytes: Int
        public let parts: [Part]
    }
    struct Draft { let layer: Int, expert: Int, hits: Int, parts: [Part], bytes: Int }

    public let alignment: Int
    public let records: [Record]
    /// Magic, index length, the JSON index, zero padding to the first record.
    public let header: [UInt8]
    public let fileSize: Int

    init(drafts: [Draft], alignment: Int, modelType: String, recipe: String, denseFile: String) {
        func pad(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        // Offsets depend on the index length and the index lists the offsets: lay out with a guess, grow until stable.
        var start = alignment
        while true {
            var records: [Record] = []
            var cursor = start
            for d in drafts {
                records.append(Record(layer: d.layer, expert: d.expert, hits: d.hits, offset: cursor, bytes: d.bytes, parts: d.parts))
                cursor = pad(cursor + d.bytes)
            }
            let document: JSONValue = [
                "format": "moeq expert pack 1", "alignment": .integer(Int64(alignment)), "dense_file": .string(denseFile),
                "model_type": .string(modelType), "recipe": .string(recipe),
                "records": .array(
                    records.map { r in
                        [
                            "layer": .integer(Int64(r.layer)), "expert": .integer(Int64(r.expert)), "hits": .integer(Int64(r.hits)),
                            "offset": .integer(Int64(r.offset)), "bytes": .integer(Int64(r.bytes)),
                            "parts": .array(
                                r.parts.map { p in
                                    [
                                        "projection": .string(p.projection), "tensor": .string(p.tensor), "type": .string(p.type.rawValue),
                                        "ne": .array(p.dimensions.map { .integer(Int64($0)) }), "offset": .integer(Int64(p.offset)),
                                        "bytes": .integer(Int64(p.bytes)),
                                    ]
                                }),
                        ]
                    }),
            ]
            let json = Array(document.prettyPrinted().utf8)
            var header = ExpertPackFile.magic
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
            header += json
            if pad(header.count) <= start {
                header += [UInt8](repeating: 0, count: start - header.count)
                self.alignment = alignment
                self.records = records
                self.header = header
                fileSize = cursor
                return
            }
            start = pad(header.count)
        }
    }
}
