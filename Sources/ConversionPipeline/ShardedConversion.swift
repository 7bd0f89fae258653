// Scale-out: `moeq convert --shard k/n` converts a deterministic subset of the output's units (tensors) into a
// part file; `moeq merge` assembles the n parts into the final GGUF, byte for byte what one machine writes, and
// checks every unit's XXH3 on the way. Part format: formats/shard-part.md.
import Foundation
import TensorFormats

/// Where a converted tensor's bytes go: the final GGUF, or a shard's part file.
protocol TensorSink: AnyObject {
    func write(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int) throws
}

extension GGUFWriter: TensorSink {}

public enum ShardError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, offset: Int, String)
    case inconsistent(String)
    public var description: String {
        switch self {
        case let .invalid(file, offset, what): "\(file): byte \(offset): \(what)"
        case .inconsistent(let what): "the parts do not make one output: \(what)"
        }
    }
}

public enum ShardedConversion {
    static let magic = Array("MOEQPRT1".utf8)

    /// The shard (1-based) that converts each tensor of `layout`: the tensors are cut into `count` contiguous runs
    /// of about equal bytes (a tensor goes to the shard its middle byte falls in). Depends only on the layout.
    public static func assignment(_ layout: GGUFLayout, shards count: Int) -> [Int] {
        let total = max(layout.tensors.reduce(0) { $0 + $1.byteCount }, 1)
        var before = 0
        return layout.tensors.map { tensor in
            let middle = before + tensor.byteCount / 2
            before += tensor.byteCount
            return min(count, middle * count / total + 1)
        }
    }

    /// Identity of an output layout (header bytes and recipe), shared by all its parts.
    static func layoutHash(_ plan: ConversionPlan) -> UInt64 { ContentHash.xxh3(plan.layout.header + Array(plan.recipe.rawValue.utf8)) }

    /// The part file name for shard k of n of `output`.
    public static func partPath(output: String, shard: Int, of count: Int) -> String { "\(output).part-\(shard)-of-\(count)" }

    /// Converts shard `shard` of `count` into its part file; returns the part's path and how many tensors it holds.
    public static func run(_ plan: ConversionPlan, output: String, shard: Int, of count: Int, threads: Int,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> (path: String, tensors: Int, bytes: Int) {
        let owner = assignment(plan.layout, shards: count)
        let mine = plan.layout.tensors.indices.filter { owner[$0] == shard }
        let header = plan.layout.header
        var starts: [String: Int] = [:]
        var dataBytes = 0
        for i in mine { starts[plan.layout.tensors[i].name] = dataBytes; dataBytes += plan.layout.tensors[i].byteCount }
        func index(_ hashes: [UInt64]) -> [UInt8] {
            let units: [JSONValue] = mine.enumerated().map { position, i in
                let info = plan.layout.tensors[i]
                return ["name": .string(info.name), "offset": .integer(Int64(plan.layout.dataStart + info.offset)),
                        "bytes": .integer(Int64(info.byteCount)), "xxh3": .string(ContentHash.hex(hashes[position]))]
            }
            let document: JSONValue = ["format": "moeq shard part 1", "shard": .integer(Int64(shard)), "shards": .integer(Int64(count)),
                                       "layout_xxh3": .string(ContentHash.hex(layoutHash(plan))), "output_bytes": .integer(Int64(plan.layout.fileSize)),
                                       "header_bytes": .integer(Int64(header.count)), "header_xxh3": .string(ContentHash.hex(ContentHash.xxh3(header))),
                                       "units": .array(units)]
            return Array(document.prettyPrinted().utf8)
        }
        // Hashes are fixed-width hex, so the index has the same length before and after the units are written.
        let indexLength = index(mine.map { _ in 0 }).count
        let prefix = 16 + indexLength
        let path = partPath(output: output, shard: shard, of: count)
        let file = try StagedFile(path: path, size: prefix + header.count + dataBytes)
        let sink = PartSink(file: file, dataStart: prefix + header.count, starts: starts)
        var hashes: [UInt64] = []
        var done = 0
        do {
            try file.write(header, at: prefix)
            for i in mine {
                let hasher = ContentHasher()
                try GGUFConversion.fill(plan.tensors[i], type: plan.layout.tensors[i].type, plan: plan, writer: sink, threads: threads, hasher: hasher) { bytes in
                    done += bytes
                    progress(done, dataBytes)
                }
                hashes.append(hasher.digest)
            }
            var lead = magic
            withUnsafeBytes(of: UInt64(indexLength).littleEndian) { lead.append(contentsOf: $0) }
            let finalIndex = index(hashes)
            guard finalIndex.count == indexLength else { throw ShardError.inconsistent("part index changed length") }
            try file.write(lead + finalIndex, at: 0)
            try file.finish()
        } catch {
            file.abandon()
            throw error
        }
        return (path, mine.count, dataBytes)
    }

    /// Assembles parts into `output`: same layout and shard count in all, every shard exactly once, every byte of the
    /// output covered by exactly the header and the units, each unit's XXH3 checked as it is copied. Then fsync +
    /// rename and the manifest, as a single-machine conversion writes them.
    public static func merge(parts: [String], output: String) throws -> (bytes: Int, tensors: Int) {
        struct Part { let path: String; let map: MappedFile; let index: JSONValue; let dataStart: Int }
        var loaded: [Part] = []
        for path in parts {
            let map = try MappedFile(path: path)
            let all = map.bytes(in: 0..<map.size)
            guard map.size >= 16, Array(all[0..<8]) == magic else { throw ShardError.invalid(file: path, offset: 0, "not a moeq shard part (magic MOEQPRT1)") }
            var length = 0
            for b in 0..<8 { length |= Int(all[8 + b]) << (8 * b) }
            guard length >= 0, 16 + length <= map.size else { throw ShardError.invalid(file: path, offset: 8, "index length \(length) exceeds the file") }
            let index: JSONValue
            do { index = try JSONParser.parse(Array(all[16..<(16 + length)])) } catch { throw ShardError.invalid(file: path, offset: 16, "index: \(error)") }
            guard let headerBytes = index["header_bytes"]?.intValue else { throw ShardError.invalid(file: path, offset: 16, "index lacks header_bytes") }
            loaded.append(Part(path: path, map: map, index: index, dataStart: 16 + length + headerBytes))
        }
        guard let first = loaded.first else { throw ShardError.inconsistent("no parts given") }
        func field(_ p: Part, _ key: String) -> String { p.index[key].map { $0.stringValue ?? String($0.intValue ?? -1) } ?? "" }
        let count = first.index["shards"]?.intValue ?? 0
        guard count == loaded.count else { throw ShardError.inconsistent("\(first.path) is one of \(count) parts; \(loaded.count) given") }
        var seen = Set<Int>()
        for p in loaded {
            for key in ["layout_xxh3", "shards", "output_bytes", "header_xxh3"] where field(p, key) != field(first, key) {
                throw ShardError.inconsistent("\(p.path) has \(key) \(field(p, key)), \(first.path) has \(field(first, key))")
            }
            guard let k = p.index["shard"]?.intValue, (1...count).contains(k), seen.insert(k).inserted else {
                throw ShardError.inconsistent("\(p.path): shard \(field(p, "shard")) is missing, out of range or given twice")
            }
        }
        guard let outputBytes = first.index["output_bytes"]?.intValue, let headerBytes = first.index["header_bytes"]?.intValue else {
            throw ShardError.invalid(file: first.path, offset: 16, "index lacks output_bytes")
        }
        let header = first.map.bytes(in: (first.dataStart - headerBytes)..<first.dataStart)
        guard ContentHash.hex(ContentHash.xxh3(header)) == field(first, "header_xxh3") else {
            throw ShardError.invalid(file: first.path, offset: first.dataStart - headerBytes, "GGUF header bytes differ from header_xxh3")
        }
        // Every unit, with where it comes from; together with the header they must tile the data exactly.
        var units: [(name: String, offset: Int, bytes: Int, hash: UInt64, part: Part, source: Int)] = []
        for p in loaded {
            var cursor = p.dataStart
            for unit in p.index["units"]?.arrayValue ?? [] {
                guard let name = unit["name"]?.stringValue, let offset = unit["offset"]?.intValue, let bytes = unit["bytes"]?.intValue,
                      let hex = unit["xxh3"]?.stringValue, let hash = UInt64(hex, radix: 16), bytes >= 0, cursor + bytes <= p.map.size else {
                    throw ShardError.invalid(file: p.path, offset: 16, "a unit entry is incomplete or runs past the file")
                }
                units.append((name, offset, bytes, hash, p, cursor))
                cursor += bytes
            }
        }
        units.sort { $0.offset < $1.offset }
        var end = headerBytes
        for unit in units {
            guard unit.offset >= end else { throw ShardError.inconsistent("\(unit.name) (\(unit.part.path)) overlaps what comes before it") }
            end = unit.offset + unit.bytes
        }
        guard end <= outputBytes else { throw ShardError.inconsistent("units end at \(end), past the output size \(outputBytes)") }
        let file = try StagedFile(path: output, size: outputBytes)
        var entries: [OutputManifest.Entry] = []
        do {
            try file.write(header, at: 0)
            for unit in units {
                let bytes = unit.part.map.bytes(in: unit.source..<(unit.source + unit.bytes))
                guard ContentHash.xxh3(bytes) == unit.hash else {
                    throw ShardError.invalid(file: unit.part.path, offset: unit.source, "\(unit.name): bytes do not match their XXH3 \(ContentHash.hex(unit.hash))")
                }
                try file.write(bytes, at: unit.offset)
                entries.append(.init(name: unit.name, offset: unit.offset, bytes: unit.bytes, xxh3: unit.hash))
            }
            try file.finish()
        } catch {
            file.abandon()
            throw error
        }
        let firstTensor = units.first?.offset ?? headerBytes
        try OutputManifest(file: output, fileBytes: outputBytes, headerXXH3: ContentHash.xxh3(UnsafeRawBufferPointer(rebasing: header[0..<min(firstTensor, headerBytes)])),
                           tensors: entries).write()
        return (outputBytes, units.count)
    }
}

/// Writes tensors into a part file: each owned tensor's bytes at its place in the part's data region.
final class PartSink: TensorSink {
    let file: StagedFile
    let dataStart: Int
    let starts: [String: Int]

    init(file: StagedFile, dataStart: Int, starts: [String: Int]) {
        self.file = file
        self.dataStart = dataStart
        self.starts = starts
    }

    func write(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard let start = starts[name] else { throw ShardError.inconsistent("tensor \(name) is not in this shard") }
        try file.write(bytes, at: dataStart + start + offset)
    }
}
