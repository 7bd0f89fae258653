// XXH3-64 content hashes (system libxxhash): the manifest and journal checksum of written units.
import CXXHash

public enum ContentHash {
    /// XXH3 64-bit hash of `bytes` (seed 0), identical to `xxhsum -H3`.
    public static func xxh3(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    public static func xxh3(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { xxh3($0) } }

    /// The hash as 16 lowercase hex digits, as `xxhsum` prints it.
    public static func hex(_ hash: UInt64) -> String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// Streaming XXH3-64: the same value as `ContentHash.xxh3` of the concatenated updates.
public final class ContentHasher {
    private let state: OpaquePointer?

    public init() {
        state = XXH3_createState()
        _ = XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    public func update(_ bytes: UnsafeRawBufferPointer) { _ = XXH3_64bits_update(state, bytes.baseAddress, bytes.count) }
    public var digest: UInt64 { XXH3_64bits_digest(state) }
}
