/// A JSON document as RFC 8259 defines it, read by `StrictJSON`. Objects keep
/// their members in the order written (a duplicate key never gets this far);
/// numbers keep the text they were written with, so nothing is lost to `Double`.
public enum JSONValue: Sendable, Equatable {
    case object([Member])
    case array([JSONValue])
    case string(String)
    /// The number exactly as written (already checked against RFC 8259's grammar).
    case number(String)
    case bool(Bool)
    case null

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The value of `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// A word for the kind of value, for error messages.
    public var kind: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "true or false"
        case .null: "null"
        }
    }
}

extension JSONValue {
    /// The canonical form: keys sorted by their UTF-8 bytes, no white space,
    /// strings with only the escapes JSON requires, numbers as written. Two
    /// documents that differ only in formatting or key order have the same bytes.
    public func canonical() -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out, indent: nil, depth: 0)
        return out
    }

    /// Sorted keys, two-space indentation: for people and for line diffs.
    public func pretty() -> String {
        var out: [UInt8] = []
        write(to: &out, indent: 2, depth: 0)
        return String(decoding: out, as: UTF8.self)
    }

    private func write(to out: inout [UInt8], indent: Int?, depth: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: indent * level))
        }
        switch self {
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (index, member) in sorted.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                JSONWriter.appendString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(0x20) }
                member.value.write(to: &out, indent: indent, depth: depth + 1)
            }
            if !sorted.isEmpty { newline(depth) }
            out.append(UInt8(ascii: "}"))
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                element.write(to: &out, indent: indent, depth: depth + 1)
            }
            if !elements.isEmpty { newline(depth) }
            out.append(UInt8(ascii: "]"))
        case .string(let text):
            JSONWriter.appendString(text, to: &out)
        case .number(let text):
            out.append(contentsOf: text.utf8)
        case .bool(let value):
            out.append(contentsOf: (value ? "true" : "false").utf8)
        case .null:
            out.append(contentsOf: "null".utf8)
        }
    }
}
