// The container of moeq's evaluation records (base-logits records, validation parts): 8-byte magic, u64 LE header
// length, a JSON header, then one zstd frame holding the payload, whose size and XXH3-64 the header states
// (formats/base-logits.md, formats/validate-part.md). Written atomically; read with every size checked before
// anything is allocated.
import Foundation
import TensorFormats

enum FramedRecord {
    static func write(magic: [UInt8], header: JSONValue, payload: [UInt8], level: Int32, to path: String) throws {
        let json = Array(header.prettyPrinted().utf8)
        var bytes = magic
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += json + (try Zstd.compress(payload, level: level))
        try AtomicFile.write(bytes, to: path)
    }

    /// The mapped file and its decoded header; `payloadStart` is where the zstd frame begins.
    static func open<Header: Decodable>(
        _ path: String, magic: [UInt8], kind: String, as _: Header.Type, fail: (Int, String) -> Error
    ) throws -> (map: MappedFile, header: Header, payloadStart: Int) {
        let map = try MappedFile(path: path)
        var reader = BinaryReader(map.bytes)
        guard reader.expect(magic) else { throw fail(0, "not a moeq \(kind) (magic \(String(decoding: magic, as: UTF8.self)))") }
        let json: UnsafeRawBufferPointer
        do throws(BinaryReadError) { json = try reader.slice(try reader.length(UInt64.self)) } catch {
            throw fail(8, "header length exceeds the file")
        }
        do {
            return (map, try StrictJSON.decode(Header.self, from: try JSONParser.parse(json), file: path), reader.position)
        } catch let error as JSONError {
            throw fail(16 + error.offset, "header: \(error.reason)")
        } catch let error as JSONDecodingError { throw fail(16, "header: \(error.path): \(error.reason)") }
    }

    /// The decompressed payload, checked against the header's size and XXH3 (and against zstd bombs first).
    static func payload(
        _ map: MappedFile, start: Int, bytes expected: Int, xxh3: String, fail: (Int, String) -> Error
    ) throws -> [UInt8] {
        let compressed = map.size - start
        // zstd compresses at most about 1:8000 in practice; a header claiming more than that of this file is not ours.
        guard expected <= max(compressed, 1) * 16_384 else {
            throw fail(start, "payload_bytes \(expected) cannot come from \(compressed) compressed bytes")
        }
        let payload: [UInt8]
        do { payload = try Zstd.decompress(Array(map.bytes(in: start..<map.size)), limit: expected) } catch {
            throw fail(start, "payload: \(error)")
        }
        guard payload.count == expected else { throw fail(start, "payload is \(payload.count) bytes, header says \(expected)") }
        guard xxh3 == ContentHash.hex(ContentHash.xxh3(payload)) else {
            throw fail(start, "payload XXH3 differs from the header's payload_xxh3")
        }
        return payload
    }
}
