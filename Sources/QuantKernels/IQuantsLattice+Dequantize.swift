// Dequantization of the lattice i-quants (ggml `dequantize_row_iq2_xxs` … `_iq3_s`): per 32 values a scale from the
// super-scale and a 4-bit code, per group the lattice point's values and its signs.

extension IQuantsLattice {
    static func dequantize(_ kind: Kind, _ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        let v = format(kind).grid.pointValues
        do {
            switch kind {
            case .iq2xxs:
                for ib in 0..<8 {
                    let aux = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2 + 8 * ib + 4, as: UInt32.self))
                    let db = d * (0.5 + Float(aux >> 28)) * 0.25
                    for l in 0..<4 {
                        let point = Int(block.loadByte(at: 2 + 8 * ib + l))
                        let sign = IQuantGrid.signs[Int((aux >> (7 * UInt32(l))) & 127)]
                        emit8(v + 8 * point, db, sign, y + 32 * ib + 8 * l)
                    }
                }
            case .iq2xs:
                for ib in 0..<8 {
                    let scales = block.loadByte(at: 66 + ib)
                    let db = (d * (0.5 + Float(scales & 0xF)) * 0.25, d * (0.5 + Float(scales >> 4)) * 0.25)
                    for l in 0..<4 {
                        let q = block.loadHalf(at: 2 + 2 * (4 * ib + l))
                        emit8(v + 8 * Int(q & 511), l < 2 ? db.0 : db.1, IQuantGrid.signs[Int(q >> 9)], y + 32 * ib + 8 * l)
                    }
                }
            case .iq2s:
                for ib in 0..<8 {
                    let scales = block.loadByte(at: 74 + ib)
                    let db = (d * (0.5 + Float(scales & 0xF)) * 0.25, d * (0.5 + Float(scales >> 4)) * 0.25)
                    let qh = Int(block.loadByte(at: 66 + ib))
                    for l in 0..<4 {
                        let point = Int(block.loadByte(at: 2 + 4 * ib + l)) | (qh << (8 - 2 * l) & 0x300)
                        emit8(v + 8 * point, l < 2 ? db.0 : db.1, block.loadByte(at: 34 + 4 * ib + l), y + 32 * ib + 8 * l)
                    }
                }
            case .iq3xxs:
                for ib in 0..<8 {
                    let aux = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 66 + 4 * ib, as: UInt32.self))
                    let db = d * (0.5 + Float(aux >> 28)) * 0.5
                    for l in 0..<4 {
                        let sign = IQuantGrid.signs[Int((aux >> (7 * UInt32(l))) & 127)]
                        let p1 = Int(block.loadByte(at: 2 + 8 * ib + 2 * l)), p2 = Int(block.loadByte(at: 2 + 8 * ib + 2 * l + 1))
                        emit4(v + 4 * p1, v + 4 * p2, db, sign, y + 32 * ib + 8 * l)
                    }
                }
            case .iq3s:
                for ib in 0..<8 {
                    let scales = block.loadByte(at: 106 + ib / 2)
                    let db = d * Float(1 + 2 * Int32(ib % 2 == 0 ? scales & 0xF : scales >> 4))
                    let qh = Int(block.loadByte(at: 66 + ib))
                    for l in 0..<4 {
                        let p1 = Int(block.loadByte(at: 2 + 8 * ib + 2 * l)) | ((qh << (8 - 2 * l)) & 256)
                        let p2 = Int(block.loadByte(at: 2 + 8 * ib + 2 * l + 1)) | ((qh << (7 - 2 * l)) & 256)
                        emit4(v + 4 * p1, v + 4 * p2, db, block.loadByte(at: 74 + 4 * ib + l), y + 32 * ib + 8 * l)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func emit8(_ grid: UnsafePointer<Float>, _ db: Float, _ sign: UInt8, _ y: UnsafeMutablePointer<Float>) {
        for j in 0..<8 { y[j] = db * grid[j] * (sign & (1 << UInt8(j)) != 0 ? -1 : 1) }
    }

    @inline(__always)
    private static func emit4(
        _ first: UnsafePointer<Float>, _ second: UnsafePointer<Float>, _ db: Float, _ sign: UInt8, _ y: UnsafeMutablePointer<Float>
    ) {
        for j in 0..<4 {
            y[j] = db * first[j] * (sign & (1 << UInt8(j)) != 0 ? -1 : 1)
            y[j + 4] = db * second[j] * (sign & (1 << UInt8(j + 4)) != 0 ? -1 : 1)
        }
    }
}
