import JSON

/// A JSON document as YAML 1.2 block style (`-o yaml`): the same keys, in the order the JSON has
/// them, strings quoted when YAML would read them as something else. Pure.
public enum YAMLText {
    public static func render(_ value: JSONValue) -> String {
        var lines: [String] = []
        emit(value, indent: 0, into: &lines, prefix: nil)
        return lines.joined(separator: "\n")
    }

    private static func emit(_ value: JSONValue, indent: Int, into lines: inout [String], prefix: String?) {
        let pad = String(repeating: " ", count: indent)
        switch value {
        case .object(let members) where !members.isEmpty:
            if let prefix { lines.append(pad + prefix) }
            let inner = prefix == nil ? indent : indent + 2
            for member in members {
                let key = scalar(.string(member.key))
                switch member.value {
                case .object(let nested) where !nested.isEmpty:
                    emit(member.value, indent: inner, into: &lines, prefix: key + ":")
                case .array(let elements) where !elements.isEmpty:
                    lines.append(String(repeating: " ", count: inner) + key + ":")
                    emit(member.value, indent: inner, into: &lines, prefix: nil)
                default:
                    lines.append(String(repeating: " ", count: inner) + key + ": " + scalar(member.value))
                }
            }
        case .array(let elements) where !elements.isEmpty:
            if let prefix { lines.append(pad + prefix) }
            for element in elements {
                var nested: [String] = []
                emit(element, indent: 0, into: &nested, prefix: nil)
                // The first line of each element follows its dash; the rest line up under it.
                for (index, line) in nested.enumerated() {
                    lines.append(pad + (index == 0 ? "- " : "  ") + line)
                }
            }
        default:
            lines.append(pad + (prefix.map { $0 + " " } ?? "") + scalar(value))
        }
    }

    /// A scalar, an empty object (`{}`) or an empty array (`[]`).
    static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): quoted(text)
        case .number(let text): text
        case .bool(let flag): flag ? "true" : "false"
        case .null: "null"
        case .object: "{}"
        case .array: "[]"
        }
    }

    /// Plain when YAML reads it back as this same string; otherwise double-quoted with JSON's escapes (a subset of YAML's).
    static func quoted(_ text: String) -> String {
        let reserved: Set<String> = [
            "", "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE", "yes", "no", "on",
            "off",
        ]
        let plain =
            !reserved.contains(text) && Double(text) == nil && Int(text) == nil
            && text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
            && !text.hasPrefix(" ") && !text.hasSuffix(" ")
            && !":#{}[],&*!|>'\"%@`-?".contains(text.first ?? " ")
            && !text.contains(": ") && !text.contains(" #")
        guard !plain else { return text }
        var out: [UInt8] = []
        JSONWriter.appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
