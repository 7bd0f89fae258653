// The YAML that recipe files use, read into the same JSONValue model as JSON: block mappings and sequences by
// indentation, flow `[…]` / `{…}`, quoted and plain scalars, comments. Anchors, aliases, tags, block scalars and
// multiple documents are refused with the line named — a recipe never needs them, and a silent misread is worse.

public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { "line \(line): \(reason)" }
}

public enum YAMLParser {
    public static func parse(_ text: String) throws(YAMLError) -> JSONValue {
        var parser = Parser(lines: try logicalLines(text))
        guard !parser.lines.isEmpty else { return .null }
        let value = try parser.block(indent: parser.lines[0].indent)
        if parser.position < parser.lines.count {
            let line = parser.lines[parser.position]
            throw YAMLError(line: line.number, reason: "unexpected indentation")
        }
        return value
    }

    struct Line { let number: Int; let indent: Int; let text: Substring }

    /// Non-blank lines with comments removed; a leading `---` is allowed.
    static func logicalLines(_ text: String) throws(YAMLError) -> [Line] {
        var result: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = raw
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.hasPrefix("\t") || line.drop(while: { $0 == " " }).hasPrefix("\t") {
                throw YAMLError(line: number, reason: "tabs are not allowed for indentation")
            }
            let content = stripComment(line)
            let trimmed = content.drop(while: { $0 == " " })
            if trimmed.trimmingTrailingSpaces().isEmpty { continue }
            if trimmed.trimmingTrailingSpaces() == "---" && result.isEmpty { continue }
            if trimmed.hasPrefix("---") || trimmed.hasPrefix("...") { throw YAMLError(line: number, reason: "multiple documents are not supported") }
            result.append(Line(number: number, indent: content.count - trimmed.count, text: trimmed.trimmingTrailingSpaces()))
        }
        return result
    }

    /// The line up to a `#` that starts a comment (outside quotes, at the start or after a space).
    static func stripComment(_ line: Substring) -> Substring {
        var quote: Character?
        var previous: Character = " "
        for index in line.indices {
            let c = line[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if (c == "\"" || c == "'") && (index == line.startIndex || " :-[{,".contains(previous)) {
                // A quote opens a quoted scalar only where a token starts ("Bob's mix # note" is plain text).
                quote = c
            } else if c == "#" && (previous == " " || index == line.startIndex) {
                return line[..<index]
            }
            previous = c
        }
        return line
    }

    struct Parser {
        var lines: [Line]
        var position = 0

        var depth = 0

        mutating func block(indent: Int) throws(YAMLError) -> JSONValue {
            let line = lines[position]
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw YAMLError(line: line.number, reason: "nested more than 64 levels deep") }
            if line.text == "-" || line.text.hasPrefix("- ") { return try sequence(indent: indent) }
            return try mapping(indent: indent)
        }

        mutating func sequence(indent: Int) throws(YAMLError) -> JSONValue {
            var items: [JSONValue] = []
            while position < lines.count, lines[position].indent == indent, lines[position].text == "-" || lines[position].text.hasPrefix("- ") {
                let line = lines[position]
                let item = line.text.dropFirst().drop(while: { $0 == " " })
                if item.isEmpty {
                    position += 1
                    guard position < lines.count, lines[position].indent > indent else { items.append(.null); continue }
                    items.append(try block(indent: lines[position].indent))
                } else if item == "-" || item.hasPrefix("- ") || Parser.splitKey(item) != nil && !item.hasPrefix("[") && !item.hasPrefix("{")
                            && !item.hasPrefix("\"") && !item.hasPrefix("'") || Parser.quotedKey(item) {
                    // "- - x" (a nested sequence) or "- key: value" (a mapping): the item's text becomes a line of its
                    // own at its column, so what follows at that column continues it.
                    let column = indent + (line.text.count - item.count)
                    lines[position] = Line(number: line.number, indent: column, text: item)
                    items.append(try block(indent: column))
                } else {
                    items.append(try Parser.scalar(item, line: line.number))
                    position += 1
                }
            }
            return .array(items)
        }

        mutating func mapping(indent: Int) throws(YAMLError) -> JSONValue {
            var object = JSONObject()
            var seen = Set<String>()
            while position < lines.count, lines[position].indent == indent {
                let line = lines[position]
                if line.text == "-" || line.text.hasPrefix("- ") {
                    throw YAMLError(line: line.number, reason: "a sequence item where a mapping key was expected")
                }
                guard let (rawKey, rest) = Parser.splitKey(line.text) else {
                    throw YAMLError(line: line.number, reason: "expected \"key: value\"")
                }
                if let first = rest.first, first != "\"", first != "'", first != "[", first != "{", Parser.splitKey(rest) != nil {
                    throw YAMLError(line: line.number, reason: "a mapping value cannot itself be \"key: value\" on the same line")
                }
                let key: String
                if case .string(let s) = try Parser.scalar(rawKey, line: line.number) { key = s } else { key = String(rawKey) }
                guard seen.insert(key).inserted else { throw YAMLError(line: line.number, reason: "duplicate key \"\(key)\"") }
                position += 1
                let value: JSONValue
                if rest.isEmpty {
                    if position < lines.count, lines[position].indent > indent {
                        value = try block(indent: lines[position].indent)
                    } else if position < lines.count, lines[position].indent == indent, lines[position].text == "-" || lines[position].text.hasPrefix("- ") {
                        value = try sequence(indent: indent)
                    } else {
                        value = .null
                    }
                } else {
                    value = try Parser.scalar(rest, line: line.number)
                }
                _ = object.insertNew(key, value)
            }
            return .object(object)
        }

        /// A quoted string followed by `:` — a mapping entry with a quoted key.
        static func quotedKey(_ text: Substring) -> Bool {
            guard let first = text.first, first == "\"" || first == "'", let (key, _) = splitKey(text) else { return false }
            return key.count >= 2 && key.last == first
        }

        /// `key: value` or `key:` outside quotes and brackets → (key, value).
        static func splitKey(_ text: Substring) -> (Substring, Substring)? {
            var quote: Character?
            var depth = 0
            for index in text.indices {
                let c = text[index]
                if let q = quote { if c == q { quote = nil }; continue }
                switch c {
                case "\"", "'": quote = c
                case "[", "{": depth += 1
                case "]", "}": depth -= 1
                case ":" where depth == 0:
                    let after = text.index(after: index)
                    if after == text.endIndex || text[after] == " " {
                        let key = text[..<index].trimmingTrailingSpaces()
                        return key.isEmpty ? nil : (key, text[after...].drop(while: { $0 == " " }))
                    }
                default: break
                }
            }
            return nil
        }

        static func scalar(_ text: Substring, line: Int) throws(YAMLError) -> JSONValue {
            var reader = FlowReader(text: Array(text), line: line)
            let value = try reader.value()
            reader.skipSpaces()
            guard reader.index == reader.text.count else { throw YAMLError(line: line, reason: "unexpected text after a value: \(String(text))") }
            return value
        }
    }

    /// Scalars and one-line flow collections.
    struct FlowReader {
        let text: [Character]
        let line: Int
        var index = 0

        mutating func skipSpaces() { while index < text.count, text[index] == " " { index += 1 } }

        var depth = 0

        mutating func value(inFlow: Bool = false) throws(YAMLError) -> JSONValue {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw YAMLError(line: line, reason: "nested more than 64 levels deep") }
            skipSpaces()
            guard index < text.count else { return .null }
            switch text[index] {
            case "[":
                index += 1
                var items: [JSONValue] = []
                skipSpaces()
                if index < text.count, text[index] == "]" { index += 1; return .array(items) }
                while true {
                    items.append(try value(inFlow: true))
                    skipSpaces()
                    guard index < text.count else { throw YAMLError(line: line, reason: "unclosed [") }
                    if text[index] == "," { index += 1; continue }
                    if text[index] == "]" { index += 1; return .array(items) }
                    throw YAMLError(line: line, reason: "expected , or ] in a flow sequence")
                }
            case "{":
                index += 1
                var object = JSONObject()
                skipSpaces()
                if index < text.count, text[index] == "}" { index += 1; return .object(object) }
                while true {
                    guard case .string(let key) = try value(inFlow: true) else { throw YAMLError(line: line, reason: "flow mapping keys must be strings") }
                    skipSpaces()
                    guard index < text.count, text[index] == ":" else { throw YAMLError(line: line, reason: "expected : after \"\(key)\"") }
                    index += 1
                    guard object[key] == nil else { throw YAMLError(line: line, reason: "duplicate key \"\(key)\"") }
                    _ = object.insertNew(key, try value(inFlow: true))
                    skipSpaces()
                    guard index < text.count else { throw YAMLError(line: line, reason: "unclosed {") }
                    if text[index] == "," { index += 1; continue }
                    if text[index] == "}" { index += 1; return .object(object) }
                    throw YAMLError(line: line, reason: "expected , or } in a flow mapping")
                }
            case "\"": return .string(try doubleQuoted())
            case "'": return .string(try singleQuoted())
            case "&", "*", "!", "|", ">", "%", "@", "`":
                throw YAMLError(line: line, reason: "\"\(text[index])\" (anchors, aliases, tags, block scalars) is not supported in recipe files")
            default:
                let start = index
                while index < text.count {
                    let c = text[index]
                    if inFlow && (c == "," || c == "]" || c == "}") { break }
                    if inFlow && c == ":" && (index + 1 == text.count || text[index + 1] == " ") { break }
                    index += 1
                }
                var end = index
                while end > start, text[end - 1] == " " { end -= 1 }
                return plain(String(text[start..<end]))
            }
        }

        /// Plain scalars resolved as PyYAML does (YAML 1.1): yes/no/on/off are booleans, 0o / 0x / leading-zero
        /// octal integers, floats need a dot and a signed exponent.
        func plain(_ s: String) -> JSONValue {
            switch s {
            case "", "~", "null", "Null", "NULL": return .null
            case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return .bool(true)
            case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return .bool(false)
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
            case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
            case ".nan", ".NaN", ".NAN": return .double(.nan)
            default: break
            }
            var body = Substring(s)
            var negative = false
            if let sign = body.first, sign == "-" || sign == "+" { negative = sign == "-"; body = body.dropFirst() }
            let digits = body.filter { $0 != "_" }
            func signed(_ magnitude: Int64?) -> JSONValue? { magnitude.map { .integer(negative ? -$0 : $0) } }
            if body.hasPrefix("0x"), digits.count > 2, let v = signed(Int64(digits.dropFirst(2), radix: 16)) { return v }
            if body.hasPrefix("0b"), digits.count > 2, let v = signed(Int64(digits.dropFirst(2), radix: 2)) { return v }
            if body.hasPrefix("0"), digits.count > 1, digits.allSatisfy({ $0.isASCII && $0 >= "0" && $0 <= "7" }), let v = signed(Int64(digits, radix: 8)) { return v }
            // Decimal: "0" or no leading zero (PyYAML reads "08" as a string).
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), body.first != "_", digits == "0" || digits.first != "0",
               let v = signed(Int64(digits)) { return v }
            // A float with a sign needs a digit before the dot ("-.5" is a string to PyYAML, ".5" a float).
            if body.contains("."), isYAML11Float(body), !(body.count < s.count && body.first == "."),
               let double = Double(String(s.filter { $0 != "_" })) { return .double(double) }
            return .string(s)
        }

        /// `digits.digits[e±digits]` or `.digits[e±digits]` (the exponent needs its sign in YAML 1.1).
        func isYAML11Float(_ body: Substring) -> Bool {
            var mantissa = body, exponent: Substring?
            if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) { mantissa = body[..<e]; exponent = body[body.index(after: e)...] }
            let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].allSatisfy({ $0.isNumber || $0 == "_" }), parts[1].allSatisfy({ $0.isNumber || $0 == "_" || $0 == "." }) else { return false }
            guard !(parts[0].isEmpty && parts[1].isEmpty) else { return false }
            if parts[0].isEmpty && parts[1].first?.isNumber != true { return false }
            if let exponent {
                guard let sign = exponent.first, sign == "+" || sign == "-", exponent.count > 1, exponent.dropFirst().allSatisfy(\.isNumber) else { return false }
            }
            return true
        }

        mutating func doubleQuoted() throws(YAMLError) -> String {
            index += 1
            var out = ""
            while index < text.count {
                let c = text[index]
                index += 1
                if c == "\"" { return out }
                guard c == "\\" else { out.append(c); continue }
                guard index < text.count else { break }
                let e = text[index]
                index += 1
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "\\", "\"", "/": out.append(e)
                case "u":
                    guard index + 4 <= text.count, let code = UInt32(String(text[index..<(index + 4)]), radix: 16), let scalar = Unicode.Scalar(code) else {
                        throw YAMLError(line: line, reason: "bad \\u escape")
                    }
                    out.unicodeScalars.append(scalar)
                    index += 4
                default: throw YAMLError(line: line, reason: "unsupported escape \\\(e)")
                }
            }
            throw YAMLError(line: line, reason: "unclosed double-quoted string")
        }

        mutating func singleQuoted() throws(YAMLError) -> String {
            index += 1
            var out = ""
            while index < text.count {
                let c = text[index]
                index += 1
                if c == "'" {
                    if index < text.count, text[index] == "'" { out.append("'"); index += 1; continue }
                    return out
                }
                out.append(c)
            }
            throw YAMLError(line: line, reason: "unclosed single-quoted string")
        }
    }
}

extension Substring {
    func trimmingTrailingSpaces() -> Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)] == " " { end = index(before: end) }
        return self[startIndex..<end]
    }
}
