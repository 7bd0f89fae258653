// The page-cache controls a streaming reader relies on: pages a pass has used leave the cache when asked, the pages
// outside the range asked for stay, and a prefetch brings pages into the cache.
import Foundation
import Testing
@testable import TensorFormats

#if canImport(Glibc)
import Glibc

/// The type of the file system holding `path` (the longest mount point above it in /proc/mounts).
private func fileSystem(of path: String) -> String {
    let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    var best = "", type = ""
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ").map(String.init)
        guard fields.count > 2 else { continue }
        let point = fields[1], inside = point == "/" || resolved == point || resolved.hasPrefix(point + "/")
        if inside && point.count > best.count { (best, type) = (point, fields[2]) }
    }
    return type
}

/// File systems whose files live in the page cache and leave it when asked: not tmpfs (its pages are the file) nor
/// network or FUSE mounts (their caching is their own).
private let pageCached: Set<String> = ["ext4", "ext3", "xfs", "btrfs", "overlay", "f2fs"]

@Test(
    .enabled(
        if: pageCached.contains(fileSystem(of: NSTemporaryDirectory())),
        "the temp directory's file system does not keep its files in a page cache that drops on request"))
func droppedRangeLeavesThePageCacheWhatLiesOutsideStays() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/weights.bin", page = Int(sysconf(Int32(_SC_PAGESIZE)))
    // 16 MiB: the kernel caches a file in folios of up to 2 MiB and drops only those wholly inside the range.
    let bytes = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.synchronize()  // dirty pages cannot be dropped
    try handle.close()
    let file = try MappedFile(path: path)
    #expect(Array(file.bytes) == bytes)  // every page read, so every page cached
    #expect(file.cachedBytes(in: 0..<file.size) == file.size)
    // A range that starts and ends inside a page: what lies outside it stays, its inside (away from the ends, where a
    // folio may reach outside) goes.
    let range = (3 << 20 + 100)..<(13 << 20 + 7)
    file.releaseAll()
    file.dropCached(in: range)
    #expect(file.cachedBytes(in: (6 << 20)..<(10 << 20)) == 0)
    #expect(file.cachedBytes(in: 0..<(3 << 20)) == 3 << 20)
    #expect(file.cachedBytes(in: (13 << 20 + page)..<file.size) == file.size - (13 << 20 + page))
    // Asked ahead, the dropped pages come back without being touched; the bytes read are the file's.
    file.prefetch(in: range)
    var waited = 0
    while file.cachedBytes(in: 0..<file.size) < file.size, waited < 1000 {
        usleep(10_000)
        waited += 1
    }
    #expect(file.cachedBytes(in: 0..<file.size) == file.size)
    #expect(Array(file.bytes(in: range)) == Array(bytes[range]))
}
#endif
