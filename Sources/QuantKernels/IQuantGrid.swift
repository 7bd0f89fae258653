// The lattices of ggml's i-quants: each group of 8 (IQ1, IQ2) or 4 (IQ3) values is stored as the index of one
// point of a fixed table. The tables themselves (IQuantGrids.swift) are read out of ggml by
// validation/quant/make_grids.py; this file derives what ggml's `iq2xs_init_impl` / `iq3xs_init_impl` build from
// them: the map from a code word (the levels of a group, `bits` bits each) to its point, and for every code word
// that is not a point the list of nearest points ggml's search tries (all points within the `nearest` smallest
// squared distances, nearest first, ties by index — qsort on (distance, index) in ggml).

final class IQuantGrid: @unchecked Sendable {
    /// Points in the table.
    let count: Int
    /// Coordinates per point (8 or 4) and bits per coordinate level (2 or 3).
    let dims: Int, bits: Int
    /// Level values for dequantization (ggml's grid bytes, e.g. 8, 25, 43 for IQ2; −1, 0, 1 for IQ1).
    let levels: [Float]
    // The tables live as long as the process (one static instance per lattice), so the kernels read them through
    // plain pointers: no reference counting in the inner loops.
    /// `count × dims` levels of every point.
    let pointLevels: UnsafePointer<Int8>
    /// `count × dims` odd coordinates 2·level + 1, as ggml's search grid holds them.
    let pointOdd: UnsafePointer<Float>
    /// `count × dims` dequantization values.
    let pointValues: UnsafePointer<Float>
    /// Code word → point index (≥ 0), or −(offset + 1) of its neighbour list in `neighbours` (count, then indices).
    let map: UnsafePointer<Int32>
    let neighbours: UnsafePointer<UInt16>
    /// Entries in `neighbours` (list counts included).
    let neighbourEntries: Int
    /// The neighbour lists' coordinates transposed for eight-candidates-at-a-time scoring: for the list at `offset`,
    /// `chunkStart[offset]` is where its chunks begin; chunk c holds, for each coordinate i, the values of candidates
    /// 8c…8c+7 (the last chunk padded with its final candidate, which can never win a strict "<" against itself).
    /// As f32, loaded directly by the search instead of widening and converting bytes: the odd values 2·level + 1 for
    /// the lattice types, the levels themselves for IQ1 (its search adds a shift).
    let chunkValues: UnsafePointer<Float>
    let chunkStart: UnsafePointer<Int32>

    private static func persistent<T>(_ array: [T]) -> UnsafePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(1, array.count))
        pointer.initialize(from: array, count: array.count)
        return UnsafePointer(pointer)
    }

    init(codes: [UInt16], levels: [Float], dims: Int, bits: Int, maxLevel: Int, nearest: Int, oddValues: Bool = true) {
        count = codes.count
        self.dims = dims
        self.bits = bits
        self.levels = levels
        let mask = (1 << bits) - 1
        var pointLevels = [Int8](repeating: 0, count: count * dims)
        for (k, code) in codes.enumerated() {
            for i in 0..<dims { pointLevels[k * dims + i] = Int8((Int(code) >> (bits * i)) & mask) }
        }
        self.pointLevels = IQuantGrid.persistent(pointLevels)
        pointOdd = IQuantGrid.persistent(pointLevels.map { Float(2 * Int($0) + 1) })
        pointValues = IQuantGrid.persistent(pointLevels.map { levels[Int($0)] })

        var map = [Int32](repeating: Int32.min, count: 1 << (bits * dims))
        for (k, code) in codes.enumerated() { map[Int(code)] = Int32(k) }
        // Neighbour lists for every code word whose levels are all ≤ maxLevel (the searches clamp to that).
        var neighbours: [UInt16] = []
        var distance = [Int32](repeating: 0, count: count)
        var key = [Int](repeating: 0, count: dims)
        var words = 1
        for _ in 0..<dims { words *= maxLevel + 1 }
        for word in 0..<words {
            var rest = word, u = 0
            for i in 0..<dims {
                key[i] = rest % (maxLevel + 1)
                rest /= maxLevel + 1
                u |= key[i] << (bits * i)
            }
            if map[u] >= 0 { continue }
            var smallest: [Int32] = []
            for j in 0..<count {
                var d2: Int32 = 0
                for i in 0..<dims {
                    let diff = Int32(2 * (Int(pointLevels[j * dims + i]) - key[i]))
                    d2 += diff * diff
                }
                distance[j] = d2
            }
            // The `nearest` smallest distinct distances, ascending.
            for d in distance where !smallest.contains(d) {
                if smallest.count < nearest {
                    smallest.append(d)
                    smallest.sort()
                } else if d < smallest[nearest - 1] {
                    smallest[nearest - 1] = d
                    smallest.sort()
                }
            }
            map[u] = -Int32(neighbours.count + 1)
            let countAt = neighbours.count
            neighbours.append(0)
            for d in smallest {
                for j in 0..<count where distance[j] == d { neighbours.append(UInt16(j)) }
            }
            neighbours[countAt] = UInt16(neighbours.count - countAt - 1)
        }
        var chunkLevels: [Int8] = [], chunkStart = [Int32](repeating: -1, count: neighbours.count)
        var offset = 0
        while offset < neighbours.count {
            let count = Int(neighbours[offset])
            chunkStart[offset] = Int32(chunkLevels.count)
            for chunk in 0..<((count + 7) / 8) {
                for i in 0..<dims {
                    for lane in 0..<8 {
                        let candidate = Swift.min(8 * chunk + lane, count - 1)
                        chunkLevels.append(pointLevels[Int(neighbours[offset + 1 + candidate]) * dims + i])
                    }
                }
            }
            offset += count + 1
        }
        self.map = IQuantGrid.persistent(map)
        self.neighbours = IQuantGrid.persistent(neighbours)
        self.chunkValues = IQuantGrid.persistent(chunkLevels.map { oddValues ? Float(2 * Int32($0) + 1) : Float($0) })
        self.chunkStart = IQuantGrid.persistent(chunkStart)
        neighbourEntries = neighbours.count
    }

    static let iq2xxs = IQuantGrid(codes: iq2xxsCodes, levels: iq2xxsLevels, dims: 8, bits: 2, maxLevel: 2, nearest: 2)
    static let iq2xs = IQuantGrid(codes: iq2xsCodes, levels: iq2xsLevels, dims: 8, bits: 2, maxLevel: 2, nearest: 2)
    static let iq2s = IQuantGrid(codes: iq2sCodes, levels: iq2sLevels, dims: 8, bits: 2, maxLevel: 2, nearest: 1)
    static let iq1s = IQuantGrid(codes: iq1sCodes, levels: iq1sLevels, dims: 8, bits: 2, maxLevel: 2, nearest: 3, oddValues: false)
    static let iq3xxs = IQuantGrid(codes: iq3xxsCodes, levels: iq3xxsLevels, dims: 4, bits: 3, maxLevel: 7, nearest: 2)
    static let iq3s = IQuantGrid(codes: iq3sCodes, levels: iq3sLevels, dims: 4, bits: 3, maxLevel: 7, nearest: 3)

    /// The 8 sign bits of a 7-bit sign index: the eighth makes the count of negative values even (ggml `ksigns_iq2xs`).
    static let signs: [UInt8] = (0..<128).map { UInt8($0 | (($0.nonzeroBitCount & 1) << 7)) }
}
