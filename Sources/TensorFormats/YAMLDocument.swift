// YAML documents (recipe files) through Yams (libyaml), read into the same JSONValue model as JSON. Plain scalars are
// resolved as PyYAML's safe_load does (YAML 1.1: yes/no/on/off booleans, 0o / 0x / leading-zero octal integers, floats
// need a dot and a signed exponent); anchors, aliases, tags, block scalars, multiple documents and deep nesting are
// refused with the line named — a recipe never needs them, and a silent misread is worse.
import Yams

public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { "line \(line): \(reason)" }
}

public enum YAMLDocument {
    /// Deeper flow or block nesting than this is refused before libyaml sees it (the composer recurses per level).
    public static let maximumDepth = 64

    /// The YAML 1.1 scalar types as PyYAML resolves them (yaml.org/type: bool, int, float, null).
    static let resolver: Resolver = {
        var resolver = Resolver.basic
        let rules: [(Tag.Name, String)] = [
            (.bool, "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
            (.int, "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
            (
                .float,
                "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9_]+(?:[eE][-+][0-9]+)?"
                    + "|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$"
            ),
            (.null, "^(?:~|null|Null|NULL|)$"),
        ]
        for (tag, pattern) in rules { if let next = try? resolver.appending(tag, pattern) { resolver = next } }
        return resolver
    }()

    public static func parse(_ text: String) throws(YAMLError) -> JSONValue {
        try checkNesting(text)
        do {
            let parser = try Parser(yaml: text, resolver: resolver)
            guard let root = try parser.nextRoot() else { return .null }
            if try parser.nextRoot() != nil {
                throw YAMLError(line: secondDocumentLine(text), reason: "more than one document (a recipe is one)")
            }
            return try value(root)
        } catch let error as YAMLError {
            throw error
        } catch let error as YamlError {
            throw translate(error, text: text)
        } catch {
            throw YAMLError(line: 1, reason: "\(error)")
        }
    }

    private static func value(_ node: Node) throws(YAMLError) -> JSONValue {
        let line = node.mark?.line ?? 1
        if node.anchor != nil { throw YAMLError(line: line, reason: "anchors and aliases are not accepted in recipe files") }
        switch node {
        case .alias:
            throw YAMLError(line: line, reason: "anchors and aliases are not accepted in recipe files")
        case .scalar(let scalar):
            // A quoted scalar carries str as its tag (how libyaml marks "quoted, so a string"); any other tag was written.
            let tag = scalar.tag.rawValue
            guard tag.isEmpty || (scalar.style != .plain && tag == Tag.Name.str.rawValue) else {
                throw YAMLError(line: line, reason: "tags (\(tag)) are not accepted in recipe files")
            }
            switch scalar.style {
            case .literal, .folded: throw YAMLError(line: line, reason: "block scalars (| and >) are not accepted in recipe files")
            case .plain: return resolve(scalar.string, tag: Tag.Name(rawValue: node.tag.rawValue))
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            guard sequence.tag.rawValue.isEmpty else { throw YAMLError(line: line, reason: "tags are not accepted in recipe files") }
            var items: [JSONValue] = []
            for item in sequence { items.append(try value(item)) }
            return .array(items)
        case .mapping(let mapping):
            guard mapping.tag.rawValue.isEmpty else { throw YAMLError(line: line, reason: "tags are not accepted in recipe files") }
            var object = JSONObject()
            for (key, item) in mapping {
                guard case .scalar(let scalar) = key, key.anchor == nil else {
                    throw YAMLError(line: key.mark?.line ?? line, reason: "mapping keys must be plain or quoted strings")
                }
                object[scalar.string] = try value(item)
            }
            return .object(object)
        }
    }

    /// A plain scalar's value for its resolved YAML 1.1 type.
    static func resolve(_ text: String, tag: Tag.Name) -> JSONValue {
        switch tag {
        case .null: return .null
        case .bool: return .bool(["yes", "true", "on"].contains(text.lowercased()))
        case .int:
            var body = Substring(text.filter { $0 != "_" })
            var negative = false
            if let sign = body.first, sign == "-" || sign == "+" { negative = sign == "-"; body = body.dropFirst() }
            let magnitude: Int64?
            if body.hasPrefix("0x") {
                magnitude = Int64(body.dropFirst(2), radix: 16)
            } else if body.hasPrefix("0b") {
                magnitude = Int64(body.dropFirst(2), radix: 2)
            } else if body.count > 1 && body.hasPrefix("0") {
                magnitude = Int64(body.dropFirst(), radix: 8)
            } else {
                magnitude = Int64(body)
            }
            return magnitude.map { .integer(negative ? -$0 : $0) } ?? .string(text)
        case .float:
            let lowered = text.lowercased()
            if lowered.hasSuffix(".inf") { return .double(text.hasPrefix("-") ? -.infinity : .infinity) }
            if lowered == ".nan" { return .double(.nan) }
            return Double(text.filter { $0 != "_" }).map { .double($0) } ?? .string(text)
        default:
            return .string(text)
        }
    }

    /// Refuses nesting deeper than `maximumDepth` (flow brackets or block indentation levels) with its line.
    private static func checkNesting(_ text: String) throws(YAMLError) {
        var depth = 0, line = 1, quote: Character? = nil
        var indents: [Int] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let indent = raw.prefix { $0 == " " }.count
            if raw.dropFirst(indent).first.map({ $0 != "#" }) ?? false {
                while let last = indents.last, last >= indent { indents.removeLast() }
                indents.append(indent)
                if indents.count > maximumDepth { throw YAMLError(line: line, reason: "nested more than \(maximumDepth) levels deep") }
            }
            for c in raw {
                if let open = quote { if c == open { quote = nil }; continue }
                switch c {
                case "\"", "'": quote = c
                case "[", "{":
                    depth += 1
                    if depth > maximumDepth { throw YAMLError(line: line, reason: "nested more than \(maximumDepth) levels deep") }
                case "]", "}": depth -= 1
                case "#": break
                default: continue
                }
            }
            line += 1
        }
    }

    private static func secondDocumentLine(_ text: String) -> Int {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let starts = lines.indices.filter { lines[$0].hasPrefix("---") || lines[$0].hasPrefix("...") }
        let content = lines.indices.first {
            !lines[$0].trimmingCharacters(in: .whitespaces).isEmpty && !lines[$0].hasPrefix("#") && !lines[$0].hasPrefix("---")
        }
        return (starts.first { $0 > (content ?? 0) } ?? 0) + 1
    }

    private static func translate(_ error: YamlError, text: String) -> YAMLError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            // At the end of the text (an unclosed bracket or quote) the line that opened it says more.
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            let line = mark.line > lines ? context?.mark.line ?? lines : mark.line
            return YAMLError(line: line, reason: problem + (context.map { " (\($0.text))" } ?? ""))
        case let .duplicatedKeysInMapping(duplicates, context):
            // Yams marks the first occurrence; name the line where the key repeats.
            let key = duplicates.first ?? ""
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let repeats = lines.indices.filter { i in
                let stripped = lines[i].drop { $0 == " " || $0 == "-" }
                return stripped.hasPrefix(key + ":") || stripped.hasPrefix("\"\(key)\":") || stripped.hasPrefix("'\(key)':")
            }
            return YAMLError(line: repeats.count > 1 ? repeats[1] + 1 : context.mark.line, reason: "key \"\(key)\" appears twice")
        case let .reader(problem, offset, _, _):
            return YAMLError(line: offset.map { o in text.utf8.prefix(o).filter { $0 == 0x0A }.count + 1 } ?? 1, reason: problem)
        default:
            return YAMLError(line: 1, reason: "\(error)")
        }
    }
}
