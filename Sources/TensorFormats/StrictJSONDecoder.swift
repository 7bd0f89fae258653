// Strict typed decoding of JSON documents (recipe files, hardware targets, model specs, manifests, indexes): a
// `Decoder` over JSONValue that refuses keys a type does not declare (when its CodingKeys are CaseIterable), never
// converts between types, and names the file and the key path (`rules[2].layers[1]`) in every error.

/// Why a JSON document does not fit its type: file, key path and reason.
public struct JSONDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// `rules[2].layers`, or `(top level)`.
    public let path: String
    public let reason: String

    public init(file: String, path: String, reason: String) {
        self.file = file
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(file): \(path): \(reason)" }
}

public enum StrictJSON {
    /// Decodes `value` (from `file`) as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue, file: String) throws(JSONDecodingError) -> T {
        do {
            return try T(from: ValueDecoder(value: value, path: [], file: file))
        } catch let error as JSONDecodingError {
            throw error
        } catch {
            throw JSONDecodingError(file: file, path: "(top level)", reason: "\(error)")
        }
    }

    /// Reads, parses and decodes the file at `path`.
    public static func decode<T: Decodable>(_ type: T.Type, file path: String) throws -> T {
        try decode(type, from: try JSONParser.parse(file: path), file: path)
    }

    /// `a.b[3].c` from a coding path.
    static func describe(_ path: [CodingKey]) -> String {
        guard !path.isEmpty else { return "(top level)" }
        var text = ""
        for key in path {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text
    }

    /// The declared keys of a CodingKeys type, when it lists them (`CaseIterable`).
    static func declaredKeys<Key: CodingKey>(_ type: Key.Type) -> [String]? {
        guard let iterable = type as? any CaseIterable.Type else { return nil }
        return keyNames(iterable)
    }

    private static func keyNames<T: CaseIterable>(_ type: T.Type) -> [String] { T.allCases.compactMap { ($0 as? CodingKey)?.stringValue } }
}

/// A coding-path element for array positions and the keys of free-form objects.
struct JSONCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let path: [CodingKey]
    let file: String
    var codingPath: [CodingKey] { path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func failure(_ reason: String, at path: [CodingKey]? = nil) -> JSONDecodingError {
        JSONDecodingError(file: file, path: StrictJSON.describe(path ?? self.path), reason: reason)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let object = value.objectValue else { throw failure("expected an object, found \(value.serialized())") }
        if let allowed = StrictJSON.declaredKeys(Key.self) {
            for (key, _) in object.pairs where !allowed.contains(key) {
                throw failure(
                    "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))", at: path + [JSONCodingKey(stringValue: key)])
            }
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, object: object))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let array = value.arrayValue else { throw failure("expected an array, found \(value.serialized())") }
        return UnkeyedContainer(decoder: self, array: array)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleValue(decoder: self) }

    func child(_ value: JSONValue, _ key: CodingKey) -> ValueDecoder { ValueDecoder(value: value, path: path + [key], file: file) }

    /// A scalar of type `T`, exactly: integers must be integral and in range, no string ↔ number conversion.
    func scalar<T>(_ type: T.Type) throws -> T {
        func mismatch(_ wanted: String) -> JSONDecodingError { failure("expected \(wanted), found \(value.serialized())") }
        switch type {
        case is Bool.Type:
            guard let v = value.boolValue else { throw mismatch("true or false") }
            return v as! T
        case is String.Type:
            guard let v = value.stringValue else { throw mismatch("a string") }
            return v as! T
        case is Double.Type:
            guard let v = value.doubleValue, v.isFinite else { throw mismatch("a number") }
            return v as! T
        case is Float.Type:
            guard let v = value.doubleValue, v.isFinite, Float(v).isFinite else { throw mismatch("a number") }
            return Float(v) as! T
        default:
            guard let v = value.intValue else { throw mismatch("an integer") }
            switch type {
            case is Int.Type: return v as! T
            case is Int64.Type: return Int64(v) as! T
            case is Int32.Type:
                guard let n = Int32(exactly: v) else { throw mismatch("an integer that fits 32 bits") }
                return n as! T
            case is UInt64.Type:
                guard let n = UInt64(exactly: v) else { throw mismatch("a non-negative integer") }
                return n as! T
            case is UInt32.Type:
                guard let n = UInt32(exactly: v) else { throw mismatch("a non-negative integer that fits 32 bits") }
                return n as! T
            default: throw failure("\(type) is not a JSON scalar type moeq decodes")
            }
        }
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Bool.self || T.self == String.self || T.self == Double.self || T.self == Float.self || T.self == Int.self
            || T.self == Int64.self || T.self == Int32.self || T.self == UInt64.self || T.self == UInt32.self
        {
            return try scalar(type)
        }
        if T.self == JSONValue.self { return value as! T }
        return try T(from: self)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ValueDecoder
    let object: JSONObject
    var codingPath: [CodingKey] { decoder.path }
    var allKeys: [Key] { object.pairs.compactMap { Key(stringValue: $0.0) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func value(_ key: Key) throws -> JSONValue {
        guard let value = object[key.stringValue] else { throw decoder.failure("required key is missing", at: codingPath + [key]) }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { object[key.stringValue]?.isNull ?? true }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder.child(try value(key), key).decode(type) }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = object[key.stringValue], !value.isNull else { return nil }
        return try decoder.child(value, key).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.child(try value(key), key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try decoder.child(try value(key), key).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder { decoder.child(try value(key), key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: ValueDecoder
    let array: [JSONValue]
    var currentIndex = 0
    var codingPath: [CodingKey] { decoder.path }
    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    init(decoder: ValueDecoder, array: [JSONValue]) {
        self.decoder = decoder
        self.array = array
    }

    private mutating func next() throws -> ValueDecoder {
        guard !isAtEnd else { throw decoder.failure("the array has only \(array.count) elements") }
        defer { currentIndex += 1 }
        return decoder.child(array[currentIndex], JSONCodingKey(intValue: currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decode(type) }
    mutating func nestedContainer<N: CodingKey>(keyedBy type: N.Type) throws -> KeyedDecodingContainer<N> {
        try next().container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> Decoder { try next() }
}

private struct SingleValue: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [CodingKey] { decoder.path }
    func decodeNil() -> Bool { decoder.value.isNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decode(type) }
}

extension JSONValue: Decodable {
    /// Any JSON value (for free-form parts of a document, such as a model spec's embedded config.json).
    public init(from decoder: Decoder) throws {
        guard let strict = decoder as? ValueDecoder else {
            throw JSONDecodingError(
                file: "", path: StrictJSON.describe(decoder.codingPath), reason: "JSONValue decodes only through StrictJSON")
        }
        self = strict.value
    }
}
