// llama.cpp importance matrices, both formats (formats.md §7): the GGUF one (`W.in_sum2` + `W.counts`) and
// the legacy `.dat`. Both become per-column importance = mean of x² per matrix, as llama-quantize uses it.
import Foundation

public enum ImportanceMatrixError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, byteOffset: Int, reason: String)
    public var description: String {
        switch self {
        case let .unreadable(file, offset, reason): "\(file): byte \(offset): \(reason)"
        }
    }
}

/// Where one entry's values are in the mapped file, and how they become importance: the legacy format's raw sums
/// divided by the call count, the GGUF format's Σx² per column divided by each matrix's token count (1 for a matrix
/// no token reached).
struct ImportanceEntry: Sendable {
    let offset: Int
    let count: Int
    let divisor: Float
    /// GGUF only: tokens per matrix, and values per matrix.
    let matrixCounts: [Float]?
    let perRow: Int
}

/// The entries of an importance matrix, read from the mapped file when asked for (a 1 T model's imatrix is gigabytes;
/// a conversion needs one expert's slice at a time). Iterates as (name, values) pairs in name order.
public struct ImportanceEntries: Sendable, Sequence {
    let file: MappedFile
    let locations: [String: ImportanceEntry]

    public var count: Int { locations.count }
    public var isEmpty: Bool { locations.isEmpty }
    public var keys: [String] { Array(locations.keys) }
    /// How many values the entry `name` has (n_per_row × matrices), without reading them.
    public func valueCount(_ name: String) -> Int? { locations[name]?.count }

    /// All values of `name`.
    public subscript(name: String) -> [Float]? { values(name, in: 0..<(locations[name]?.count ?? 0)) }

    /// Values `range` of entry `name` (read from the file, its pages released after).
    public func values(_ name: String, in range: Range<Int>) -> [Float]? {
        guard let entry = locations[name], range.lowerBound >= 0, range.upperBound <= entry.count else { return nil }
        let bytes = file.bytes(in: (entry.offset + 4 * range.lowerBound)..<(entry.offset + 4 * range.upperBound))
        defer { file.releasePages(in: (entry.offset + 4 * range.lowerBound)..<(entry.offset + 4 * range.upperBound)) }
        var out = [Float](repeating: 0, count: range.count)
        for i in 0..<range.count {
            let raw = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            if let counts = entry.matrixCounts {
                let c = counts[(range.lowerBound + i) / entry.perRow]
                out[i] = c > 0 ? raw / c : 1  // never-routed experts: neutral 1
            } else {
                out[i] = raw / entry.divisor
            }
        }
        return out
    }

    public func makeIterator() -> AnyIterator<(key: String, value: [Float])> {
        var names = locations.keys.sorted().makeIterator()
        return AnyIterator {
            guard let name = names.next() else { return nil }
            return (name, self[name] ?? [])
        }
    }
}

public struct ImportanceMatrix: Sendable {
    /// Tensor-name suffixes of llama-imatrix's GGUF: Σx² per column and tokens per matrix.
    public static let sumSuffix = ".in_sum2", countSuffix = ".counts"

    /// Per GGUF weight name: `n_per_row × n_matrices` values (expert e's slice starts at e·n_per_row).
    public let entries: ImportanceEntries
    public let datasets: [String]
    public let chunkCount: Int
    public let path: String
    /// GGUF imatrix only: per weight name, how many tokens each matrix (expert) saw — routing statistics.
    public private(set) var matrixCounts: [String: [Float]] = [:]

    /// The importance slice for `name` of `width` columns, matrix `index` (expert), if present. Reads only that slice.
    public func importance(for name: String, width: Int, matrix index: Int = 0) -> [Float]? {
        entries.values(name, in: (index * width)..<((index + 1) * width))
    }

    /// Reads either format (GGUF first, like llama-quantize). Every value must be finite and non-negative: an importance
    /// weight that is not would poison the quantizer's search, so the file is refused naming the entry. The values are
    /// checked in one pass over the file and read again only when a conversion asks for them.
    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path: path)
        func fail(_ offset: Int, _ reason: String) -> ImportanceMatrixError { .unreadable(file: path, byteOffset: offset, reason: reason) }
        /// Checks `count` f32 values at `offset` (releasing their pages as it goes).
        func check(_ offset: Int, _ count: Int, _ name: String) throws {
            let chunk = 1 << 18
            var first = 0
            while first < count {
                let n = min(chunk, count - first)
                let range = (offset + 4 * first)..<(offset + 4 * (first + n))
                let bytes = mapped.bytes(in: range)
                defer { mapped.releasePages(in: range) }
                // Fast pass: finite and not negative ⟺ the bits (−0 taken as +0) are below +∞'s. The slow pass names the value.
                var largest: UInt32 = 0
                for i in 0..<n {
                    let word = bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                    largest = max(largest, word == 0x8000_0000 ? 0 : word)
                }
                if largest < 0x7F80_0000 {
                    first += n
                    continue
                }
                for i in 0..<n {
                    let value = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    if !value.isFinite || value < 0 {
                        throw fail(
                            offset + 4 * (first + i),
                            "\(name): value \(first + i) is \(value); importance values are finite sums of squares")
                    }
                }
                first += n
            }
        }
        if BinaryReader(mapped.bytes).remaining >= 4, Array(mapped.bytes[0..<4]) == Array("GGUF".utf8) {
            let file = try GGUFFile(path: path)
            guard file[GGUFKey.type]?.stringValue == GGUFKey.imatrixType else {
                throw fail(0, "a GGUF, but general.type is not \"imatrix\" (a model file given as --imatrix?)")
            }
            var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
            for tensor in file.tensors {
                if tensor.name.hasSuffix(Self.sumSuffix) { sums[String(tensor.name.dropLast(Self.sumSuffix.count))] = tensor }
                if tensor.name.hasSuffix(Self.countSuffix) { counts[String(tensor.name.dropLast(Self.countSuffix.count))] = tensor }
            }
            var locations: [String: ImportanceEntry] = [:], matrixCounts: [String: [Float]] = [:]
            for (name, sum) in sums {
                guard let count = counts[name], sum.type == .f32, count.type == .f32, sum.dimensions.count <= 2 else {
                    throw fail(file.dataStart + sum.offset, "\(name): in_sum2 without F32 counts")
                }
                let perRow = sum.dimensions[0], matrices = sum.dimensions.count > 1 ? sum.dimensions[1] : 1
                guard count.elementCount == matrices else {
                    throw fail(file.dataStart + count.offset, "\(name): \(count.elementCount) counts for \(matrices) matrices")
                }
                try check(file.dataStart + sum.offset, perRow * matrices, name + Self.sumSuffix)
                try check(file.dataStart + count.offset, matrices, name + Self.countSuffix)
                let c = try file.dequantized(count)
                if let bad = c.firstIndex(where: { $0 > 1e15 }) {
                    throw fail(
                        file.dataStart + count.offset, "\(name)\(Self.countSuffix): count \(bad) is \(c[bad]) tokens, which no run reaches")
                }
                locations[name] = ImportanceEntry(
                    offset: file.dataStart + sum.offset, count: perRow * matrices, divisor: 1, matrixCounts: c, perRow: perRow)
                matrixCounts[name] = c
            }
            entries = ImportanceEntries(file: mapped, locations: locations)
            self.matrixCounts = matrixCounts
            datasets =
                file[GGUFKey.imatrixDatasets].flatMap { if case .array(_, let e) = $0 { e.compactMap(\.stringValue) } else { nil } } ?? []
            chunkCount = max(0, file[GGUFKey.imatrixChunkCount]?.integerValue ?? 0)
            return
        }
        // Legacy: int32 count; per entry int32 name length, name, int32 ncall, int32 nval, f32[nval]; optional trailer.
        var reader = BinaryReader(mapped.bytes)
        func read<T>(_ body: (inout BinaryReader) throws -> T, _ what: String) throws -> T {
            do { return try body(&reader) } catch let error as BinaryReadError {
                throw fail(
                    error.offset,
                    "not an importance matrix (a GGUF imatrix or llama.cpp's legacy .dat): \(what) runs past the end of the file")
            }
        }
        let count = try read({ try $0.length(Int32.self, elementSize: 12) }, "the entry count")
        var locations: [String: ImportanceEntry] = [:]
        for _ in 0..<count {
            let at = reader.position
            let nameBytes = try read({ try $0.slice(try $0.length(Int32.self)) }, "an entry name")
            guard !nameBytes.isEmpty, let name = String(validating: nameBytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw fail(at, "an entry name is empty or not UTF-8")
            }
            let calls = Int(try read({ try $0.i32() }, "\(name): the call count"))
            let n = try read({ r in try r.length(Int32.self, elementSize: 4) }, "\(name): the values")
            let valuesAt = reader.position
            _ = try read({ r in try r.slice(4 * n) }, "\(name): the values")
            try check(valuesAt, n, name)
            locations[name] = ImportanceEntry(offset: valuesAt, count: n, divisor: Float(max(calls, 1)), matrixCounts: nil, perRow: n)
        }
        entries = ImportanceEntries(file: mapped, locations: locations)
        // Optional trailer: int32 last chunk, then int32 length + the dataset's file name.
        chunkCount = reader.remaining >= 4 ? max(0, Int(try read({ try $0.i32() }, "the chunk count"))) : 0
        var names: [String] = []
        if reader.remaining >= 4, let bytes = try? reader.slice(try reader.length(Int32.self)) {
            names.append(String(decoding: bytes, as: UTF8.self))
        }
        datasets = names
    }
}
