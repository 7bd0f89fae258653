// IQ4_NL and IQ4_XS: 4-bit indices into one non-linear table of 16 values (ggml `kvalues_iq4nl`). IQ4_NL is a
// 32-value block with an f16 scale; IQ4_XS is a 256-value super-block whose eight 32-value blocks carry 6-bit
// scales (low nibbles in scales_l, high 2 bits in scales_h) relative to one f16 super-scale. The quantizer is
// ggml's `quantize_row_iq4_nl_impl` as `ggml_quantize_chunk` calls it (7 scale trials each side), reproduced with
// the same float operations in the same order (formats/recipes.md; ggml src/ggml-quants.c).

enum IQuants4 {
    /// The code book (ggml `kvalues_iq4nl`), ascending.
    static let values: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
    /// Scale trials on each side of the first guess (`ntry` in ggml's chunk quantizer).
    static let trials = 7
    /// Blocks whose largest magnitude is below this get scale 0 (ggml `GROUP_MAX_EPS`).
    static let groupMaxEpsilon: Float = 1e-15

    /// Bytes of one block: d + 16 index bytes (IQ4_NL); d + scales_h + 4 scales_l + 128 index bytes (IQ4_XS).
    static let nlBlockBytes = 18, xsBlockBytes = 136

    /// The code whose value is nearest to `x` (ties to the upper code), by bisection as ggml's `best_index_int8`.
    @inline(__always)
    static func bestIndex(_ x: Float) -> Int {
        if x <= Float(values[0]) { return 0 }
        if x >= Float(values[15]) { return 15 }
        var low = 0, high = 15
        while high - low > 1 {
            let middle = (low + high) / 2
            if x < Float(values[middle]) { high = middle } else { low = middle }
        }
        return x - Float(values[high - 1]) < Float(values[high]) - x ? high - 1 : high
    }

    /// The code book as floats, for the lanes.
    private static let floatValues: [Float] = values.map(Float.init)

    /// Σ w·q·x and Σ w·q² over one 32-value block, q the code-book value nearest to `inverseScale`·x. Eight values
    /// at a time; the sums are still added one value after another, in ggml's order, so they round as ggml's do.
    @inline(__always)
    static func weightedSums(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, inverseScale: Float) -> (Float, Float) {
        var sumqx: Float = 0, sumq2: Float = 0
        let id = SIMD8<Float>(repeating: inverseScale)
        for chunk in 0..<4 {
            let xv = UnsafeRawPointer(x + 8 * chunk).loadUnaligned(as: SIMD8<Float>.self)
            let wv = UnsafeRawPointer(weight + 8 * chunk).loadUnaligned(as: SIMD8<Float>.self)
            let q = nearestValues(id * xv)
            let a = wv * q * xv, b = wv * q * q
            for lane in 0..<8 {
                sumqx += a[lane]
                sumq2 += b[lane]
            }
        }
        return (sumqx, sumq2)
    }

    /// `bestIndex`'s value for eight inputs: the bracketing code-book values, then ggml's rounded-difference
    /// comparison (not a midpoint, which could round differently). NaN lands on the last value, as in ggml.
    @inline(__always)
    static func nearestValues(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Ascending values: the last v_k ≤ x is the lower bracket and v_(k+1) the upper one.
        var lower = SIMD8<Float>(repeating: floatValues[14]), upper = SIMD8<Float>(repeating: floatValues[15])
        for k in 0..<15 {
            let at = x .>= SIMD8<Float>(repeating: floatValues[k])
            lower.replace(with: SIMD8<Float>(repeating: floatValues[k]), where: at)
            upper.replace(with: SIMD8<Float>(repeating: floatValues[k + 1]), where: at)
        }
        var q = upper
        q.replace(with: lower, where: (x - lower) .< (upper - x))
        let first = SIMD8<Float>(repeating: floatValues[0]), last = SIMD8<Float>(repeating: floatValues[15])
        q.replace(with: last, where: x .>= last)
        q.replace(with: first, where: x .<= first)
        return q
    }

    // MARK: Quantize

    /// One IQ4_NL row (`xs` false: width a multiple of 32) or IQ4_XS row (`xs` true: a multiple of 256).
    static func quantize(
        _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer, xs: Bool
    ) {
        let size = xs ? 256 : 32, bytes = xs ? xsBlockBytes : nlBlockBytes
        var scratch = Scratch(superBlock: size)
        for block in 0..<(width / size) {
            quantizeSuperBlock(
                x + size * block, size: size, importance: importance.map { $0 + size * block }, out + bytes * block, xs: xs,
                scratch: &scratch)
        }
    }

    /// Per-row working memory, reused for every super-block.
    struct Scratch {
        var codes: [Int]
        var scales: [Float]
        var weight = [Float](repeating: 0, count: 32)
        init(superBlock: Int) {
            codes = [Int](repeating: 0, count: superBlock)
            scales = [Float](repeating: 0, count: superBlock / 32)
        }
    }

    private static func quantizeSuperBlock(
        _ x: UnsafePointer<Float>, size: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer, xs: Bool,
        scratch: inout Scratch
    ) {
        var sigma2: Float = 0
        for j in 0..<size { sigma2 += x[j] * x[j] }
        sigma2 *= 2 / Float(size)
        let first = Float(values[0])
        var maxScale: Float = 0, absMaxScale: Float = 0
        for block in 0..<(size / 32) {
            let xb = x + 32 * block
            if let importance {
                for j in 0..<32 { scratch.weight[j] = importance[32 * block + j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
            } else {
                for j in 0..<32 { scratch.weight[j] = xb[j] * xb[j] }
            }
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where abs(xb[j]) > amax {
                amax = abs(xb[j])
                max = xb[j]
            }
            if amax < groupMaxEpsilon {
                scratch.scales[block] = 0
                continue
            }
            var d = -max / first
            var (sumqx, sumq2) = scratch.weight.withUnsafeBufferPointer { weightedSums(xb, $0.baseAddress!, inverseScale: 1 / d) }
            d = sumq2 > 0 ? sumqx / sumq2 : 0
            var best = d * sumqx
            for step in -trials...trials {
                let id = Float(step + Int(values[0])) / max
                (sumqx, sumq2) = scratch.weight.withUnsafeBufferPointer { weightedSums(xb, $0.baseAddress!, inverseScale: id) }
                if sumq2 > 0 && sumqx * sumqx > best * sumq2 {
                    d = sumqx / sumq2
                    best = d * sumqx
                }
            }
            scratch.scales[block] = d
            if abs(d) > absMaxScale {
                absMaxScale = abs(d)
                maxScale = d
            }
        }

        if xs {
            // Eight 6-bit block scales relative to d = −max/32 (the f32 value, not its f16 rounding).
            let d = -maxScale / 32
            out.storeHalf(GGMLRounding.half(d), at: 0)
            let id: Float = d != 0 ? 1 / d : 0
            var high: UInt16 = 0
            for block in 0..<8 {
                var l = Int(GGMLRounding.nearestInt(id * scratch.scales[block]))
                l = Swift.max(-32, Swift.min(31, l))
                let dl = d * Float(l)
                let idl: Float = dl != 0 ? 1 / dl : 0
                for j in 0..<32 { scratch.codes[32 * block + j] = bestIndex(idl * x[32 * block + j]) }
                l += 32
                let low = UInt8(l & 0xF)
                if block % 2 == 0 {
                    out.storeByte(low, at: 4 + block / 2)
                } else {
                    out.storeByte(out.load(fromByteOffset: 4 + block / 2, as: UInt8.self) | (low << 4), at: 4 + block / 2)
                }
                high |= UInt16(l >> 4) << (2 * block)
            }
            out.storeHalf(high, at: 2)
        } else {
            out.storeHalf(GGMLRounding.half(scratch.scales[0]), at: 0)
            let id: Float = scratch.scales[0] != 0 ? 1 / scratch.scales[0] : 0
            for j in 0..<32 { scratch.codes[j] = bestIndex(id * x[j]) }
        }
        let codesStart = xs ? 8 : 2
        for block in 0..<(size / 32) {
            for j in 0..<16 {
                let byte = UInt8(scratch.codes[32 * block + j]) | (UInt8(scratch.codes[32 * block + 16 + j]) << 4)
                out.storeByte(byte, at: codesStart + 16 * block + j)
            }
        }
    }

    // MARK: Dequantize

    static func dequantizeNL(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        for j in 0..<16 {
            let q = block.loadByte(at: 2 + j)
            y[j] = d * Float(values[Int(q & 0xF)])
            y[j + 16] = d * Float(values[Int(q >> 4)])
        }
    }

    static func dequantizeXS(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        let high = block.loadHalf(at: 2)
        for sub in 0..<8 {
            let low = Int(block.loadByte(at: 4 + sub / 2) >> (4 * UInt8(sub % 2))) & 0xF
            let scale = low | (Int((high >> (2 * UInt16(sub))) & 3) << 4)
            let dl = d * Float(scale - 32)
            for j in 0..<16 {
                let q = block.loadByte(at: 8 + 16 * sub + j)
                y[32 * sub + j] = dl * Float(values[Int(q & 0xF)])
                y[32 * sub + j + 16] = dl * Float(values[Int(q >> 4)])
            }
        }
    }
}
