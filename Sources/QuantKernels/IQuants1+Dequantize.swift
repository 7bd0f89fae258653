// IQ1_S / IQ1_M dequantization (ggml's dequantize_row_iq1_s / _m): grid points times the block's scales and shifts.

extension IQuants1 {
    static func dequantizeS(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        let values = IQuantGrid.iq1s.pointValues
        for ib in 0..<8 {
            let qh = block.loadHalf(at: 34 + 2 * ib)
            let dl = d * Float(2 * ((qh >> 12) & 7) + 1)
            let shift = qh & 0x8000 != 0 ? -delta : delta
            for l in 0..<4 {
                let point = Int(block.loadByte(at: 2 + 4 * ib + l)) | (Int((qh >> (3 * UInt16(l))) & 7) << 8)
                for j in 0..<8 { y[32 * ib + 8 * l + j] = dl * (values[8 * point + j] + shift) }
            }
        }
    }

    static func dequantizeM(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let sc = (block.loadHalf(at: 48), block.loadHalf(at: 50), block.loadHalf(at: 52), block.loadHalf(at: 54))
        let bits = (sc.0 >> 12) | ((sc.1 >> 8) & 0x00F0) | ((sc.2 >> 4) & 0x0F00) | (sc.3 & 0xF000)
        let d = GGMLRounding.float(bits)
        let words = [sc.0, sc.1, sc.2, sc.3]
        let values = IQuantGrid.iq1s.pointValues
        for ib in 0..<16 {
            let dl = d * Float(2 * ((words[ib / 4] >> (3 * UInt16(ib % 4))) & 7) + 1)
            // qh byte ib: the high index bits of group 0 (bits 0-2) and group 1 (bits 4-6), each group's shift sign above.
            let qh = Int(block.loadByte(at: 32 + ib))
            for l in 0..<2 {
                let point = Int(block.loadByte(at: 2 * ib + l)) | ((qh << (l == 0 ? 8 : 4)) & 0x700)
                let shift = qh & (l == 0 ? 0x08 : 0x80) != 0 ? -delta : delta
                for j in 0..<8 { y[16 * ib + 8 * l + j] = dl * (values[8 * point + j] + shift) }
            }
        }
    }
}
