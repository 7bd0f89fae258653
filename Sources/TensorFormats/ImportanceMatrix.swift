// llama.cpp importance matrices, both formats (formats.md §7): the GGUF one (`W.in_sum2` + `W.counts`) and
// the legacy `.dat`. Both become per-column importance = mean of x² per matrix, as llama-quantize uses it.
import Foundation

public enum ImportanceMatrixError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, byteOffset: Int, reason: String)
    public var description: String {
        switch self { case let .unreadable(file, offset, reason): "\(file): byte \(offset): \(reason)" }
    }
}

public struct ImportanceMatrix: Sendable {
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

    /// Reads either format (GGUF first, like llama-quantize).
    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path: path)
        if mapped.size >= 4, Array(mapped.bytes[0..<4]) == Array("GGUF".utf8) {
            let file = try GGUFFile(path: path)
            guard file["general.type"]?.stringValue == "imatrix" else {
                throw ImportanceMatrixError.unreadable(file: path, byteOffset: 0, reason: "a GGUF, but general.type is not \"imatrix\"")
            }
            var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
            for tensor in file.tensors {
                if tensor.name.hasSuffix(".in_sum2") { sums[String(tensor.name.dropLast(8))] = tensor }
                if tensor.name.hasSuffix(".counts") { counts[String(tensor.name.dropLast(7))] = tensor }
            }
            var entries: [String: [Float]] = [:], matrixCounts: [String: [Float]] = [:]
            for (name, sum) in sums {
                guard let count = counts[name], sum.type == .f32, count.type == .f32, sum.dimensions.count <= 2 else {
                    throw ImportanceMatrixError.unreadable(file: path, byteOffset: file.dataStart + sum.offset, reason: "\(name): in_sum2 without F32 counts")
                }
                let perRow = sum.dimensions[0], matrices = sum.dimensions.count > 1 ? sum.dimensions[1] : 1
                guard count.elementCount == matrices else {
                    throw ImportanceMatrixError.unreadable(file: path, byteOffset: file.dataStart + count.offset, reason: "\(name): \(count.elementCount) counts for \(matrices) matrices")
                }
                let s = try file.dequantized(sum), c = try file.dequantized(count)
                var values = [Float](repeating: 1, count: perRow * matrices)   // never-routed experts: neutral 1
                for m in 0..<matrices where c[m] > 0 {
                    for j in 0..<perRow { values[m * perRow + j] = s[m * perRow + j] / c[m] }
                }
                entries[name] = values
                matrixCounts[name] = c
            }
            self.entries = entries
            self.matrixCounts = matrixCounts
            datasets = file["imatrix.datasets"].flatMap { if case .array(_, let e) = $0 { e.compactMap(\.stringValue) } else { nil } } ?? []
            chunkCount = file["imatrix.chunk_count"]?.integerValue ?? 0
            return
        }
        // Legacy: int32 count; per entry int32 name length, name, int32 ncall, int32 nval, f32[nval]; optional trailer.
        let bytes = mapped.bytes
        var position = 0
        func int32() throws -> Int {
            guard bytes.count - position >= 4 else { throw ImportanceMatrixError.unreadable(file: path, byteOffset: position, reason: "truncated") }
            defer { position += 4 }
            return Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: Int32.self)))
        }
        let count = try int32()
        guard count >= 0, count < bytes.count / 12 + 1 else { throw ImportanceMatrixError.unreadable(file: path, byteOffset: 0, reason: "entry count \(count)") }
        var entries: [String: [Float]] = [:]
        for _ in 0..<count {
            let at = position
            let length = try int32()
            guard length > 0, length <= bytes.count - position else { throw ImportanceMatrixError.unreadable(file: path, byteOffset: at, reason: "name length \(length)") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]), as: UTF8.self)
            position += length
            let calls = try int32(), values = try int32()
            guard values >= 0, values <= (bytes.count - position) / 4 else { throw ImportanceMatrixError.unreadable(file: path, byteOffset: position, reason: "\(name): \(values) values") }
            let divisor = Float(max(calls, 1))
            entries[name] = (0..<values).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position + 4 * $0, as: UInt32.self))) / divisor }
            position += 4 * values
        }
        self.entries = entries
        // Optional trailer: int32 last chunk, then int32 length + the dataset's file name.
        chunkCount = bytes.count - position >= 4 ? try int32() : 0
        var names: [String] = []
        if bytes.count - position >= 4 {
            let length = try int32()
            if length > 0, length <= bytes.count - position {
                names.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]), as: UTF8.self))
            }
        }
        datasets = names
    }
}
