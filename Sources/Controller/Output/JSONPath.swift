import JSON

/// The JSONPath subset `-o jsonpath=` takes, as kubectl users write it:
/// `{.items[*].name}`, `.hosts[0].version`, `$.items[*]['host']`. Segments are
/// `.name`, `['name']`, `[N]` (negative counts from the end), `[*]` and `.*`.
/// Pure; a malformed path is an error naming where it went wrong.
public struct JSONPath: Sendable, Equatable {
    enum Segment: Sendable, Equatable {
        case key(String)
        case index(Int)
        case all
    }
    let segments: [Segment]

    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "jsonpath \(path): \(message)" }
    }

    /// kubectl's JSONPath features this subset does not take, each named in the error.
    static let unsupported: [(marker: String, name: String)] = [
        ("?(", "filters ([?(...)])"), ("{range", "range/end templates ({range ...}{end})"),
        ("{end}", "range/end templates ({range ...}{end})"),
        ("..", "recursive descent (..)"), ("@", "the current-node @ (filters)"),
    ]

    public init(_ text: String) throws(SyntaxError) {
        for feature in Self.unsupported where text.contains(feature.marker) {
            throw SyntaxError(
                path: text,
                message: "\(feature.name) are not supported; this subset takes .field, .*, [N], [*] and ['name']")
        }
        if let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]"),
            text[open..<close].contains(":")
        {
            throw SyntaxError(
                path: text,
                message: "slices ([a:b]) are not supported; this subset takes .field, .*, [N], [*] and ['name']")
        }
        var body = Substring(text.trimmingCharacters(in: .whitespaces))
        if body.hasPrefix("{") {
            guard body.hasSuffix("}") else { throw SyntaxError(path: text, message: "a { needs its }") }
            body = body.dropFirst().dropLast()
        }
        if body.hasPrefix("$") { body = body.dropFirst() }
        var segments: [Segment] = []
        var rest = body
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                let name = rest.prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { throw SyntaxError(path: text, message: "a . needs a field name after it") }
                segments.append(name == "*" ? .all : .key(String(name)))
                rest = rest.dropFirst(name.count)
            } else if first == "[" {
                guard let close = rest.firstIndex(of: "]") else {
                    throw SyntaxError(path: text, message: "a [ needs its ]")
                }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                if inside == "*" {
                    segments.append(.all)
                } else if let index = Int(inside) {
                    segments.append(.index(index))
                } else if inside.count >= 2, let quote = inside.first, quote == "'" || quote == "\"",
                    inside.last == quote
                {
                    segments.append(.key(String(inside.dropFirst().dropLast())))
                } else {
                    throw SyntaxError(path: text, message: "[\(inside)] is not [N], [*] or ['name']")
                }
                rest = rest[rest.index(after: close)...]
            } else {
                throw SyntaxError(path: text, message: "expected . or [ at \"\(rest)\"")
            }
        }
        self.segments = segments
    }

    /// Every value the path reaches (none when it leads nowhere).
    public func select(_ root: JSONValue) -> [JSONValue] {
        var current = [root]
        for segment in segments {
            current = current.flatMap { value -> [JSONValue] in
                switch (segment, value) {
                case (.key(let name), .object):
                    return value[name].map { [$0] } ?? []
                case (.index(let index), .array(let elements)):
                    let position = index < 0 ? elements.count + index : index
                    return elements.indices.contains(position) ? [elements[position]] : []
                case (.all, .array(let elements)):
                    return elements
                case (.all, .object(let members)):
                    return members.map(\.value)
                default:
                    return []
                }
            }
        }
        return current
    }

    /// The selected values as text: strings as they are, anything else as compact JSON; one a line.
    public func render(_ root: JSONValue) -> String {
        select(root).map { value in
            if case .string(let text) = value { return text }
            return String(decoding: value.canonical(), as: UTF8.self)
        }.joined(separator: "\n")
    }
}
