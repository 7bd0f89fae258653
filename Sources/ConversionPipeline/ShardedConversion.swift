// Scale-out: `moeq convert --shard k/n` converts a deterministic subset of the output's units (tensors) into a part
// file; `moeq merge` assembles the n parts into the final GGUF, byte for byte what one machine writes, and checks
// every unit's XXH3 on the way. Part format: formats/shard-part.md.
import Foundation
import OutputPlanning
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

    /// A part file's JSON index (formats/shard-part.md).
    struct PartIndex: Codable {
        let format: String
        let shard: Int, shards: Int
        let layoutXXH3: String, headerXXH3: String
        let outputBytes: Int, headerBytes: Int
        let units: [Unit]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, shard, shards, units
            case layoutXXH3 = "layout_xxh3", headerXXH3 = "header_xxh3", outputBytes = "output_bytes", headerBytes = "header_bytes"
        }
        struct Unit: Codable {
            let name: String, offset: Int, bytes: Int, xxh3: String
            enum CodingKeys: String, CodingKey, CaseIterable { case name, offset, bytes, xxh3 }
        }
    }

    /// Converts shard `shard` of `count` into its part file; returns the part's path and how many tensors it holds.
    /// What shard `shard` of `count` holds, and its part file's exact size (for `--dry-run`).
    public static func partPlan(
        _ plan: ConversionPlan, output: String, shard: Int, of count: Int
    ) -> (
        path: String, tensors: [Int], bytes: Int
    ) {
        let owner = ConversionPlan.shardAssignment(plan.layout, shards: count)
        let mine = plan.layout.tensors.indices.filter { owner[$0] == shard }
        let dataBytes = mine.reduce(0) { $0 + plan.layout.tensors[$1].byteCount }
        let indexLength = index(plan, mine: mine, shard: shard, of: count, hashes: mine.map { _ in 0 }).count
        return (
            ConversionPlan.partPath(output: output, shard: shard, of: count), mine, 16 + indexLength + plan.layout.header.count + dataBytes
        )
    }

    /// The part's JSON index: its units with their final offsets and hashes.
    private static func index(_ plan: ConversionPlan, mine: [Int], shard: Int, of count: Int, hashes: [UInt64]) -> [UInt8] {
        let units: [JSONValue] = mine.enumerated().map { position, i in
            let info = plan.layout.tensors[i]
            return [
                "name": .string(info.name), "offset": .integer(Int64(plan.layout.dataStart + info.offset)),
                "bytes": .integer(Int64(info.byteCount)), "xxh3": .string(ContentHash.hex(hashes[position])),
            ]
        }
        let header = plan.layout.header
        let document: JSONValue = [
            "format": "moeq shard part 1", "shard": .integer(Int64(shard)), "shards": .integer(Int64(count)),
            "layout_xxh3": .string(ContentHash.hex(ConversionPlan.layoutHash(plan.layout, recipe: plan.recipe))),
            "output_bytes": .integer(Int64(plan.layout.fileSize)), "header_bytes": .integer(Int64(header.count)),
            "header_xxh3": .string(ContentHash.hex(ContentHash.xxh3(header))), "units": .array(units),
        ]
        return Array(document.prettyPrinted().utf8)
    }

    public static func run(
        _ plan: ConversionPlan, output: String, shard: Int, of count: Int, threads: Int, transforms: UnitTransforms = .standard,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> (path: String, tensors: Int, bytes: Int) {
        let owner = ConversionPlan.shardAssignment(plan.layout, shards: count)
        let mine = plan.layout.tensors.indices.filter { owner[$0] == shard }
        let header = plan.layout.header
        var starts: [String: Int] = [:]
        var dataBytes = 0
        for i in mine { starts[plan.layout.tensors[i].name] = dataBytes; dataBytes += plan.layout.tensors[i].byteCount }
        func index(_ hashes: [UInt64]) -> [UInt8] { Self.index(plan, mine: mine, shard: shard, of: count, hashes: hashes) }
        // Hashes are fixed-width hex, so the index has the same length before and after the units are written.
        let indexLength = index(mine.map { _ in 0 }).count
        let prefix = 16 + indexLength
        let path = ConversionPlan.partPath(output: output, shard: shard, of: count)
        let file = try StagedFile(path: path, size: prefix + header.count + dataBytes)
        // Units are filled in order, as a whole conversion's tensors are: O_DIRECT runs keep them out of the page cache
        // and leave all-zero stretches as holes (a synthetic slice's part is then mostly holes, as its GGUF is).
        file.enableDirectWrites()
        let sink = PartSink(file: file, dataStart: prefix + header.count, starts: starts)
        var hashes: [UInt64] = []
        var done = 0
        do {
            try file.write(header, at: prefix)
            for i in mine {
                let hasher = ContentHasher()
                try GGUFConversion.fill(
                    plan.tensors[i], type: plan.layout.tensors[i].type, plan: plan, writer: sink, threads: threads, hasher: hasher,
                    transforms: transforms
                ) { bytes in
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

    /// One part file, mapped and its index read.
    struct Part { let path: String; let map: MappedFile; let index: PartIndex; let dataStart: Int }

    static func readPart(_ path: String) throws -> Part {
        let map = try MappedFile(path: path)
        var reader = BinaryReader(map.bytes)
        guard reader.expect(magic) else { throw ShardError.invalid(file: path, offset: 0, "not a moeq shard part (magic MOEQPRT1)") }
        let json: UnsafeRawBufferPointer
        do throws(BinaryReadError) { json = try reader.slice(try reader.length(UInt64.self)) } catch {
            throw ShardError.invalid(file: path, offset: error.offset, "index length exceeds the file (\(error.available) bytes left)")
        }
        let index: PartIndex
        do {
            index = try StrictJSON.decode(PartIndex.self, from: try JSONParser.parse(json), file: path)
        } catch let error as JSONError {
            throw ShardError.invalid(file: path, offset: 16 + error.offset, "index: \(error.reason)")
        } catch let error as JSONDecodingError {
            throw ShardError.invalid(file: path, offset: 16, "index: \(error.path): \(error.reason)")
        }
        guard index.format == "moeq shard part 1" else {
            throw ShardError.invalid(file: path, offset: 16, "index format is not \"moeq shard part 1\"")
        }
        guard index.headerBytes >= 0, index.headerBytes <= reader.remaining else {
            throw ShardError.invalid(file: path, offset: reader.position, "header of \(index.headerBytes) bytes exceeds the file")
        }
        return Part(path: path, map: map, index: index, dataStart: reader.position + index.headerBytes)
    }

    /// Assembles parts into `output`: same layout and shard count in all, every shard exactly once, every byte of the
    /// output covered by exactly the header and the units, each unit's XXH3 checked as it is copied. Then the manifest,
    /// fsync + rename, as a single-machine conversion writes them.
    public static func merge(parts: [String], output: String) throws -> (bytes: Int, tensors: Int) {
        let loaded = try parts.map(readPart)
        guard let first = loaded.first else { throw ShardError.inconsistent("no parts given") }
        let count = first.index.shards
        guard count == loaded.count else { throw ShardError.inconsistent("\(first.path) is one of \(count) parts; \(loaded.count) given") }
        var seen = Set<Int>()
        for p in loaded {
            let mine = p.index, theirs = first.index
            for (key, a, b) in [
                ("layout_xxh3", mine.layoutXXH3, theirs.layoutXXH3), ("header_xxh3", mine.headerXXH3, theirs.headerXXH3),
                ("shards", String(mine.shards), String(theirs.shards)),
                ("output_bytes", String(mine.outputBytes), String(theirs.outputBytes)),
            ]
            where a != b {
                throw ShardError.inconsistent("\(p.path) has \(key) \(a), \(first.path) has \(b)")
            }
            guard (1...count).contains(mine.shard), seen.insert(mine.shard).inserted else {
                throw ShardError.inconsistent("\(p.path): shard \(mine.shard) is out of 1…\(count) or given twice")
            }
        }
        let outputBytes = first.index.outputBytes, headerBytes = first.index.headerBytes
        guard outputBytes >= headerBytes, outputBytes <= 1 << 50 else {
            throw ShardError.invalid(file: first.path, offset: 16, "output_bytes \(outputBytes) is smaller than the header or implausible")
        }
        let header = first.map.bytes(in: (first.dataStart - headerBytes)..<first.dataStart)
        guard ContentHash.hex(ContentHash.xxh3(header)) == first.index.headerXXH3 else {
            throw ShardError.invalid(file: first.path, offset: first.dataStart - headerBytes, "GGUF header bytes differ from header_xxh3")
        }
        // Every unit, with where it comes from; together with the header they must tile the data exactly.
        var units: [(name: String, offset: Int, bytes: Int, hash: UInt64, part: Part, source: Int)] = []
        for p in loaded {
            var cursor = p.dataStart
            for unit in p.index.units {
                guard let hash = UInt64(unit.xxh3, radix: 16), unit.bytes >= 0, unit.offset >= 0,
                    unit.bytes <= p.map.size - cursor, unit.offset <= outputBytes - unit.bytes
                else {
                    throw ShardError.invalid(
                        file: p.path, offset: cursor, "unit \(unit.name): its bytes, offset or xxh3 do not fit the part or the output")
                }
                units.append((unit.name, unit.offset, unit.bytes, hash, p, cursor))
                cursor += unit.bytes
            }
        }
        units.sort { $0.offset < $1.offset }
        var end = headerBytes
        for unit in units {
            guard unit.offset >= end else {
                throw ShardError.inconsistent("\(unit.name) (\(unit.part.path)) overlaps what comes before it")
            }
            end = unit.offset + unit.bytes
        }
        let file = try StagedFile(path: output, size: outputBytes)
        // Units go out in offset order: O_DIRECT runs keep them out of the page cache and leave all-zero stretches as holes.
        file.enableDirectWrites()
        var entries: [OutputManifest.Entry] = []
        do {
            try file.write(header, at: 0)
            // Copied and hashed 64 MiB at a time, each piece released once written: one stacked expert tensor of a 1 T
            // model is gigabytes. A unit whose hash does not match leaves nothing under the final name.
            let chunk = 64 << 20
            for unit in units {
                let hasher = ContentHasher()
                var done = 0
                while done < unit.bytes {
                    let count = min(chunk, unit.bytes - done)
                    let range = (unit.source + done)..<(unit.source + done + count)
                    let bytes = unit.part.map.bytes(in: range)
                    hasher.update(bytes)
                    try file.write(bytes, at: unit.offset + done)
                    unit.part.map.releasePages(in: range)
                    done += count
                }
                guard hasher.digest == unit.hash else {
                    throw ShardError.invalid(
                        file: unit.part.path, offset: unit.source,
                        "\(unit.name): bytes do not match their XXH3 \(ContentHash.hex(unit.hash))")
                }
                entries.append(.init(name: unit.name, offset: unit.offset, bytes: unit.bytes, xxh3: unit.hash))
            }
            let firstTensor = units.first?.offset ?? headerBytes
            try OutputManifest(
                file: output, fileBytes: outputBytes,
                headerXXH3: ContentHash.xxh3(UnsafeRawBufferPointer(rebasing: header[0..<min(firstTensor, headerBytes)])),
                tensors: entries
            ).write()
            try file.finish()
        } catch {
            file.abandon()
            throw error
        }
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
