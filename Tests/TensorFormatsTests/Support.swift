// Test helpers: fixture paths, temp directories, and safetensors bytes built from a header string.
import Foundation
@testable import TensorFormats

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

/// A fresh temp directory for one test.
func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "moeq-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// 8-byte little-endian length + header + `dataBytes` zero bytes.
func safetensorsBytes(header: String, dataBytes: Int) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
    bytes += json
    bytes += [UInt8](repeating: 0, count: dataBytes)
    return bytes
}

/// Parses in-memory bytes as a whole file.
func parseHeader(_ bytes: [UInt8], file: String = "test.safetensors") throws(SafetensorsError) -> SafetensorsHeader {
    let result: Result<SafetensorsHeader, SafetensorsError> = bytes.withUnsafeBytes { raw in
        do throws(SafetensorsError) { return .success(try SafetensorsHeader.parse(raw, fileSize: bytes.count, file: file)) } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

func parseHeader(_ header: String, dataBytes: Int) throws(SafetensorsError) -> SafetensorsHeader {
    try parseHeader(safetensorsBytes(header: header, dataBytes: dataBytes))
}
