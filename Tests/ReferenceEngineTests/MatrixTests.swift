// The OpenBLAS product against the plain reference loop.
import Testing
@testable import ReferenceEngine

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
