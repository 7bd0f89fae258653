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

public struct ImportanceMatrix: Sendable {
    /// Tensor-name suffixes of llama-imatrix's GGUF: Σx² per column and tokens per matrix.
    public static let sumSuffix = ".in_sum2", countSuffix = ".counts"

    /// Per GGUF weight name: `n_per_row × n_matrices` values (expert e's slice starts at e·n_per_row).
    public let entries: [String: [Float]]
    public let datasets: [String]
    public let chunkCount: Int
    public let path: String
    /// GGUF imatrix only: per weight name, how many tokens each matrix (expert) saw — routing statistics.
    public private(set) var matrixCounts: [String: [Float]] = [:]

    /// The importance slice for `name` of `width` columns, matrix `index` (expert), if present.
    public func importance(for name: String, width: Int, matrix index: Int = 0) -> [Float]? {
        guard let values = entries[name], values.count >= (index + 1) * width else { return nil }
        return Array(values[(index * width)..<((index + 1) * width)])
    }

    /// Reads either format (GGUF first, like llama-quantize). Every value must be finite and non-negative: an importance
    /// weight that is not would poison the quantizer's search, so the file is refused naming the entry.
    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path: path)
        func fail(_ offset: Int, _ reason: String) -> ImportanceMatrixError { .unreadable(file: path, byteOffset: offset, reason: reason) }
        func checked(_ values: [Float], _ name: String, at offset: Int) throws -> [Float] {
            if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw fail(offset, "\(name): value \(bad) is \(values[bad]); importance values are finite sums of squares")
            }
            return values
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
            var entries: [String: [Float]] = [:], matrixCounts: [String: [Float]] = [:]
            for (name, sum) in sums {
                guard let count = counts[name], sum.type == .f32, count.type == .f32, sum.dimensions.count <= 2 else {
                    throw fail(file.dataStart + sum.offset, "\(name): in_sum2 without F32 counts")
                }
                let perRow = sum.dimensions[0], matrices = sum.dimensions.count > 1 ? sum.dimensions[1] : 1
                guard count.elementCount == matrices else {
                    throw fail(file.dataStart + count.offset, "\(name): \(count.elementCount) counts for \(matrices) matrices")
                }
                let s = try checked(try file.dequantized(sum), name + Self.sumSuffix, at: file.dataStart + sum.offset)
                let c = try checked(try file.dequantized(count), name + Self.countSuffix, at: file.dataStart + count.offset)
                if let bad = c.firstIndex(where: { $0 > 1e15 }) {
                    throw fail(
                        file.dataStart + count.offset, "\(name)\(Self.countSuffix): count \(bad) is \(c[bad]) tokens, which no run reaches")
                }
                var values = [Float](repeating: 1, count: perRow * matrices)  // never-routed experts: neutral 1
                for m in 0..<matrices where c[m] > 0 {
                    for j in 0..<perRow { values[m * perRow + j] = s[m * perRow + j] / c[m] }
                }
                entries[name] = values
                matrixCounts[name] = c
            }
            self.entries = entries
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
        var entries: [String: [Float]] = [:]
        for _ in 0..<count {
            let at = reader.position
            let nameBytes = try read({ try $0.slice(try $0.length(Int32.self)) }, "an entry name")
            guard !nameBytes.isEmpty, let name = String(validating: nameBytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw fail(at, "an entry name is empty or not UTF-8")
            }
            let calls = Int(try read({ try $0.i32() }, "\(name): the call count"))
            let valuesAt = reader.position
            let values = try read(
                { r in
                    let n = try r.length(Int32.self, elementSize: 4)
                    var values = [Float]()
                    values.reserveCapacity(n)
                    for _ in 0..<n { values.append(try r.f32()) }
                    return values
                }, "\(name): the values")
            let divisor = Float(max(calls, 1))
            entries[name] = try checked(values, name, at: valuesAt).map { $0 / divisor }
        }
        self.entries = entries
        // Optional trailer: int32 last chunk, then int32 length + the dataset's file name.
        chunkCount = reader.remaining >= 4 ? max(0, Int(try read({ try $0.i32() }, "the chunk count"))) : 0
        var names: [String] = []
        if reader.remaining >= 4, let bytes = try? reader.slice(try reader.length(Int32.self)) {
            names.append(String(decoding: bytes, as: UTF8.self))
        }
        datasets = names
    }
}
