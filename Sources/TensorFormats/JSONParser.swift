// A strict RFC 8259 JSON parser over raw bytes: no recursion beyond a depth limit, exact integers,
// validated UTF-8, duplicate keys rejected, every failure a `JSONError` with its byte offset.

/// Why a JSON document did not parse, and where (byte offset from the start of the document).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    /// The file the document came from, when it came from one.
    public var file: String? = nil
    /// True when the file could not be read at all (then `reason` is the system's).
    public var unreadable = false
    /// The key, when the document names one key twice in an object.
    public var duplicateKey: String? = nil
    public var description: String { (file.map { "\($0): " } ?? "") + reasonWithoutFile }
    /// "invalid JSON at byte 44: …", or the system's reason when the file could not be read.
    public var reasonWithoutFile: String { unreadable ? reason : "invalid JSON at byte \(offset): \(reason)" }
}

public enum JSONParser {
    /// Nesting deeper than this is rejected rather than risking the stack.
    public static let maximumDepth = 128

    /// Parses one complete document (surrounding whitespace allowed, nothing else).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var reader = ByteReader(bytes: bytes)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        if reader.position != bytes.count { throw reader.error("unexpected trailing data") }
        return value
    }

    /// Parses a document held in a byte array.
    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { buffer in
            do throws(JSONError) { return .success(try parse(buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Reads and parses the file at `path`; errors name the file (an unreadable file is reported at byte 0 with
    /// the system's reason).
    public static func parse(file path: String) throws(JSONError) -> JSONValue {
        let bytes: [UInt8]
        do throws(FileIOError) { bytes = try PositionalFile.readAll(path) } catch {
            throw JSONError(offset: 0, reason: error.reasonWithoutFile, file: path, unreadable: true)
        }
        do throws(JSONError) { return try parse(bytes) } catch {
            throw JSONError(offset: error.offset, reason: error.reason, file: path)
        }
    }

    /// Parses a document held in a string.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue { try parse(Array(text.utf8)) }
}

// MARK: - Byte reader

private struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    func error(_ reason: String) -> JSONError { JSONError(offset: position, reason: reason) }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString, value: JSONValue) throws(JSONError) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - position >= count else { throw error("truncated literal") }
        let base = literal.utf8Start
        for i in 0..<count where bytes[position + i] != base[i] { throw error("invalid literal") }
        position += count
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth)") }
        guard let byte = current else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", value: .bool(true))
        case UInt8(ascii: "f"): return try expect("false", value: .bool(false))
        case UInt8(ascii: "n"): return try expect("null", value: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected byte 0x\(String(byte, radix: 16))")
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        position += 1
        var object = JSONObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(object) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyOffset = position
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            guard object.insertNew(key, value) else {
                throw JSONError(offset: keyOffset, reason: "duplicate key \"\(key)\"", duplicateKey: key)
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(object)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    mutating func parseNumber() throws(JSONError) -> JSONValue {
        let start = position
        var negative = false
        if current == UInt8(ascii: "-") { negative = true; position += 1 }
        guard let first = current, first >= 0x30, first <= 0x39 else { throw error("expected a digit") }
        var magnitude: UInt64 = 0
        var overflow = false
        if first == 0x30 {
            position += 1
        } else {
            while let d = current, d >= 0x30, d <= 0x39 {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(d - 0x30))
                overflow = overflow || o1 || o2
                magnitude = m2
                position += 1
            }
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard let d = current, d >= 0x30, d <= 0x39 else { throw error("expected a digit after '.'") }
            while let d = current, d >= 0x30, d <= 0x39 { position += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard let d = current, d >= 0x30, d <= 0x39 else { throw error("expected a digit in exponent") }
            while let d = current, d >= 0x30, d <= 0x39 { position += 1 }
        }
        if isInteger && !overflow {
            if !negative, magnitude <= UInt64(Int64.max) { return .integer(Int64(magnitude)) }
            if negative, magnitude <= UInt64(Int64.max) + 1 {
                return .integer(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
            }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text) else { throw JSONError(offset: start, reason: "unreadable number") }
        return .double(value)
    }

    mutating func parseString() throws(JSONError) -> String {
        position += 1
        let start = position
        // Fast path: no escapes.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
                guard let text = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
                    throw JSONError(offset: start, reason: "string is not valid UTF-8")
                }
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            position += 1
        }
        // Slow path with escapes.
        var scalars: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while true {
            guard let byte = current else { throw error("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: scalars, as: UTF8.self) else {
                    throw JSONError(offset: start, reason: "string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                guard let escape = current else { throw error("unterminated escape") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append(0x22)
                case UInt8(ascii: "\\"): scalars.append(0x5C)
                case UInt8(ascii: "/"): scalars.append(0x2F)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard current == UInt8(ascii: "\\") else { throw error("lone high surrogate") }
                        position += 1
                        guard current == UInt8(ascii: "u") else { throw error("lone high surrogate") }
                        position += 1
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("lone low surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid code point") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw error("invalid escape")
                }
            default:
                if byte < 0x20 { throw error("control character in string") }
                scalars.append(byte)
            }
        }
    }

    mutating func parseHex4() throws(JSONError) -> UInt32 {
        guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
        var code: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[position]
            let digit: UInt32
            switch b {
            case 0x30...0x39: digit = UInt32(b - 0x30)
            case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
            default: throw error("invalid hex digit")
            }
            code = code << 4 | digit
            position += 1
        }
        return code
    }
}
