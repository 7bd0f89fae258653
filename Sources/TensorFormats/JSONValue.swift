// A small, strict JSON value model: what safetensors headers, index files and config.json parse into.

/// A parsed JSON document. Objects keep their key order (safetensors headers are written in order)
/// and reject duplicate keys at parse time.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer literal (no fraction or exponent) that fits in `Int64`.
    case integer(Int64)
    /// Any other number.
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    // MARK: Typed accessors (nil when the value has another kind)

    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var isNull: Bool { self == .null }

    /// An exact integer: integer literals, or doubles with no fractional part inside `Int64`'s range.
    public var intValue: Int? {
        switch self {
        case .integer(let i): return Int(exactly: i)
        case .double(let d): return Int(exactly: d)
        default: return nil
        }
    }

    /// Any number as a `Double`.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A short name for the kind of value, for error messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Member lookup on objects; nil for other kinds or missing keys.
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}

/// An ordered JSON object. Small objects (the many 3-key tensor entries of a header) are searched linearly;
/// larger ones get a hash index, so lookups stay O(1) without a dictionary per small object.
public struct JSONObject: Sendable, Equatable {
    private var entries: [(key: String, value: JSONValue)] = []
    private var index: [String: Int]? = nil
    private static let indexThreshold = 8

    public init() {}

    public init(_ pairs: [(String, JSONValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }
    /// Key/value pairs in document order.
    public var pairs: [(key: String, value: JSONValue)] { entries }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return entries.firstIndex { $0.key == key }
    }

    /// Inserts or replaces; a new key goes at the end. Assigning nil removes the key.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { entries[$0].value } }
        set {
            if let at = position(of: key) {
                if let newValue { entries[at].value = newValue } else { entries.remove(at: at); rebuildIndex() }
            } else if let newValue {
                append(key, newValue)
            }
        }
    }

    /// Inserts a key known to be new; returns false (and changes nothing) if it exists.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        if position(of: key) != nil { return false }
        append(key, value)
        return true
    }

    private mutating func append(_ key: String, _ value: JSONValue) {
        entries.append((key, value))
        if index != nil { index?[key] = entries.count - 1 } else if entries.count > JSONObject.indexThreshold { rebuildIndex() }
    }

    private mutating func rebuildIndex() {
        guard entries.count > JSONObject.indexThreshold else { index = nil; return }
        var built: [String: Int] = [:]
        built.reserveCapacity(entries.count)
        for (i, entry) in entries.enumerated() { built[entry.key] = i }
        index = built
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}
