/// Finds a key that appears twice in one JSON object. `JSONSerialization` keeps
/// only the last of them, so `{"explicit": "deny", "explicit": "allow"}` would
/// silently allow while a reviewer reads "deny". Pure; expects valid JSON (the
/// caller parses first) and never traps on anything else.
public enum JSONDuplicateKeys {
    /// The path of the first repeated key (e.g. `defaults.explicit`, `rules[1].match.vm`), or nil.
    public static func first(in bytes: [UInt8]) -> String? {
        var scanner = Scanner(bytes: bytes)
        return scanner.value(path: "$")
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        func join(_ path: String, _ key: String) -> String { path == "$" ? key : "\(path).\(key)" }

        /// Scans one value; returns the first duplicate's path inside it.
        mutating func value(path: String) -> String? {
            skipSpace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var seen = Set<String>()
                while true {
                    skipSpace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return nil }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
                    if !seen.insert(key).inserted { return join(path, key) }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                    index += 1
                    if let found = value(path: join(path, key)) { return found }
                }
            case UInt8(ascii: "["):
                index += 1
                var element = 0
                while true {
                    skipSpace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return nil }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; element += 1; continue }
                    if let found = value(path: "\(path)[\(element)]") { return found }
                }
            case UInt8(ascii: "\""):
                _ = string()
                return nil
            default:
                // Numbers, true, false, null: up to the next delimiter.
                while index < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                    index += 1
                }
                return nil
            }
        }

        /// A string token with its escapes decoded (so `"a"` and `"\u0061"` are one key).
        mutating func string() -> String? {
            index += 1  // opening quote
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flushRaw() {
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll()
            }
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\"") { flushRaw(); return String(scalars) }
                guard byte == UInt8(ascii: "\\"), index < bytes.count else { raw.append(byte); continue }
                let escape = bytes[index]
                index += 1
                flushRaw()
                switch escape {
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "b"): scalars.append("\u{8}")
                case UInt8(ascii: "f"): scalars.append("\u{C}")
                case UInt8(ascii: "u"):
                    guard var unit = hex4() else { return nil }
                    // A surrogate pair spells one scalar.
                    if (0xD800..<0xDC00).contains(unit), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                       bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    scalars.append(Unicode.Scalar(unit) ?? "\u{FFFD}")
                default: scalars.append(Unicode.Scalar(escape))
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard bytes.count - index >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let digit = UInt32(String(UnicodeScalar(bytes[index])), radix: 16) else { return nil }
                value = value * 16 + digit
                index += 1
            }
            return value
        }
    }
}
