// The OpenBLAS product and the engine's row-exact product against the plain reference loop.
import CRowGEMM
import ConversionPipeline
import Foundation
import ModelCatalog
import Testing
@testable import ReferenceEngine

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

@Test(arguments: [(1, 1, 1), (3, 5, 7), (17, 64, 33), (64, 256, 96)])
func blasMatchesReference(m: Int, k: Int, n: Int) {
    let a = (0..<(m * k)).map { Float(($0 * 7919) % 23) / 11 - 1 }
    let b = (0..<(n * k)).map { Float(($0 * 104_729) % 31) / 15 - 1 }
    var c = [Float](repeating: .nan, count: m * n)
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                Matrix.multiplyTransposed(a, rows: m, inner: k, b, columns: n, into: c)
            }
        }
    }
    let reference = Matrix.multiplyTransposedReference(a, rows: m, inner: k, b, columns: n)
    for (x, y) in zip(c, reference) { #expect(abs(x - y) <= 1e-4 * max(1, abs(y))) }
}

/// The engine's product: close to the exact sum, and every row bit-identical however the rows are batched, the
/// columns split or the CPU path chosen (AVX-512, AVX2 + FMA or the portable fmaf loop).
@Test(arguments: [(1, 7, 3), (5, 64, 97), (37, 255, 256), (64, 768, 12), (300, 256, 768)])
func rowExactProductIsIndependentOfTheBatch(m: Int, k: Int, n: Int) {
    let a = (0..<(m * k)).map { i -> Float in Float((i * 7919) % 23) / 11 - 1 + Float(i % 5) / 1000 }
    let b = (0..<(n * k)).map { Float(($0 * 104_729) % 31) / 15 - 1 }
    /// path: 0 the best this CPU has, 1 portable, 2 AVX2 without the AVX-512 tile.
    func product(_ rows: Range<Int>, path: Int32 = 0) -> [Float] {
        let previous = moeq_row_gemm_force_portable(path)
        defer { _ = moeq_row_gemm_force_portable(previous) }
        var c = [Float](repeating: .nan, count: rows.count * n)
        let slice = Array(a[(rows.lowerBound * k)..<(rows.upperBound * k)])
        slice.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer {
                    Matrix.multiplyTransposedRowExact(a, rows: rows.count, inner: k, b, columns: n, into: $0)
                }
            }
        }
        return c
    }
    let whole = product(0..<m)
    let reference = Matrix.multiplyTransposedReference(a, rows: m, inner: k, b, columns: n)
    for (x, y) in zip(whole, reference) { #expect(abs(x - y) <= 1e-4 * max(1, abs(y))) }
    // Each row alone, and a middle run of rows, give the whole product's bits.
    for r in [0, m / 2, m - 1] { #expect(product(r..<(r + 1)) == Array(whole[(r * n)..<((r + 1) * n)])) }
    if m > 4 { #expect(product(1..<(m - 2)) == Array(whole[n..<((m - 2) * n)])) }
    #expect(product(0..<m, path: 1) == whole)
    #expect(product(0..<m, path: 2) == whole)
    // Columns computed in separate calls (as the threads split them) change nothing.
    var split = [Float](repeating: .nan, count: m * n)
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            split.withUnsafeMutableBufferPointer { c in
                for (start, end) in [(0, n / 3), (n / 3, n)] where start < end {
                    moeq_row_gemm(a.baseAddress, m, k, b.baseAddress, n, c.baseAddress, start, end)
                }
            }
        }
    }
    #expect(split == whole)
}

/// A product that decodes the weight a slice of rows at a time (for weights too large to decode whole) gives the
/// whole-matrix product bit for bit: GGUF plain and stacked-expert tensors (K-quants, llama.cpp input rounding) and a
/// BF16 checkpoint weight, with slices that do not divide the rows.
@Test func streamedProductEqualsTheWholeMatrixProduct() throws {
    let directory = fixtures.appendingPathComponent("trained-qwen3_moe_wide").path
    let output = NSTemporaryDirectory() + "moeq-streamed-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json") }
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q4_K_M), output: output, threads: 2)
    let gguf = try GGUFWeights(path: output, spec: try CheckpointWeights(path: directory).spec)
    let checkpoint = try CheckpointWeights(path: directory)
    let x = (0..<(37 * 256)).map { i -> Float in Float((i * 7919) % 23) / 11 - 1 }
    let roles: [TensorRole] = [.attention(layer: 1, part: .query), .routedExpert(layer: 0, expert: 5, projection: .down), .embedding]
    for role in roles {
        let cases: [(String, WeightRows?, [Float])] = [
            ("gguf", gguf.rowDecoder(role, minimumBytes: 0), try gguf.weight(role)),
            ("checkpoint", checkpoint.rowDecoder(role, minimumBytes: 0), try checkpoint.weight(role)),
        ]
        for (name, decoder, whole) in cases {
            let d = try #require(decoder, "\(name) \(role)")
            #expect(d.columns == 256 && d.rows * d.columns == whole.count)
            let expected = DenseOps.linear(x, tokens: 37, inputs: 256, whole, outputs: d.rows)
            for slice in [16, 48, d.rows] {
                #expect(try d.product(x, tokens: 37, sliceRows: slice) == expected, "\(name) \(role) \(slice)")
            }
        }
    }
    #expect(gguf.rowDecoder(.attention(layer: 1, part: .query)) == nil)  // small weights: decoded whole and cached
    #expect(checkpoint.rowDecoder(.embedding) == nil)
}
