// Deterministic pseudo-random numbers for synthetic checkpoints: SplitMix64 streams seeded per tensor.

/// SplitMix64: a tiny, fast generator whose stream depends only on its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    private var spareNormal: Float? = nil

    public init(seed: UInt64) { state = seed }

    /// A stream for one named tensor: the global seed mixed with an FNV-1a hash of the name.
    public init(seed: UInt64, name: String) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        self.init(seed: seed ^ hash)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    public mutating func nextUnit() -> Float { Float((next() >> 40) + 1) / Float(1 << 24) }

    /// Standard normal (Box–Muller, two values per pair of uniforms).
    public mutating func nextNormal() -> Float {
        if let spare = spareNormal { spareNormal = nil; return spare }
        let u = nextUnit(), v = nextUnit()
        let radius = (-2 * logf(u)).squareRoot()
        let angle = 2 * Float.pi * v
        spareNormal = radius * sinf(angle)
        return radius * cosf(angle)
    }
}

#if canImport(Glibc)
import Glibc
#endif
