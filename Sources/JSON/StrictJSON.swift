/// Why a document is not strict JSON: where (a path such as `rules[0].match`
/// and a byte offset), and what is wrong, in words a person can act on.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Not RFC 8259 JSON (a trailing comma, a comment, NaN, bad UTF-8, ...).
        case syntax
        /// A key given twice in one object: readers disagree on which one counts.
        case duplicateKey
        /// Nested deeper than `StrictJSON.maxDepth`.
        case tooDeep
        /// The caller's deadline came before the end of the document.
        case interrupted
    }
    public var kind: Kind
    /// `$` for the document itself, else `key.key[index]`.
    public var path: String
    public var offset: Int
    public var message: String
    public var description: String { "\(path) (byte \(offset)): \(message)" }
}

/// An RFC 8259 parser that accepts nothing else: no trailing commas, no
/// comments, no NaN or Infinity, no single quotes, no byte-order mark, no
/// unescaped control characters, no lone surrogates, no invalid UTF-8, and no
/// key twice in one object. Foundation's parsers accept trailing commas, so every
/// request body and policy document goes through this one first. Pure, and it
/// never traps or recurses without bound on any input.
public enum StrictJSON {
    public static let maxDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        try parse(bytes, interrupt: nil)
    }

    /// Values read between two looks at `interrupt`.
    public static let interruptStride = 4096

    /// As `parse`, asking `interrupt` every `interruptStride` values whether to give up (a caller's
    /// deadline): then it throws `.interrupted`. The cost is linear in the input whatever its shape.
    public static func parse(_ bytes: [UInt8], interrupt: (() -> Bool)?) throws(JSONSyntaxError) -> JSONValue {
        var reader = Reader(bytes: bytes, interrupt: interrupt)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == bytes.count else { throw reader.error("unexpected text after the document") }
        return value
    }

    /// Where the reader is: keys and indexes from the document down, rendered only for an error,
    /// so a long key costs once, not once per element below it.
    private enum Segment {
        case key(String)
        case index(Int)
    }

    private struct Reader {
        let bytes: [UInt8]
        let interrupt: (() -> Bool)?
        var index = 0
        var path: [Segment] = []
        var valuesSinceLook = 0

        init(bytes: [UInt8], interrupt: (() -> Bool)?) {
            self.bytes = bytes
            self.interrupt = interrupt
        }

        var renderedPath: String {
            guard !path.isEmpty else { return "$" }
            var text = ""
            for segment in path {
                switch segment {
                case .key(let key): text += text.isEmpty ? key : ".\(key)"
                case .index(let position): text += text.isEmpty ? "$[\(position)]" : "[\(position)]"
                }
            }
            return text
        }

        func error(_ message: String, _ kind: JSONSyntaxError.Kind = .syntax) -> JSONSyntaxError {
            JSONSyntaxError(kind: kind, path: renderedPath, offset: index, message: message)
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            if let interrupt {
                valuesSinceLook += 1
                if valuesSinceLook >= StrictJSON.interruptStride {
                    valuesSinceLook = 0
                    if interrupt() { throw error("parsing stopped at the deadline", .interrupted) }
                }
            }
            guard let byte = current else { throw error("the document ends where a value should be") }
            switch byte {
            case UInt8(ascii: "{"):
                guard depth < StrictJSON.maxDepth else {
                    throw error("nested deeper than \(StrictJSON.maxDepth) levels", .tooDeep)
                }
                return try object(depth: depth + 1)
            case UInt8(ascii: "["):
                guard depth < StrictJSON.maxDepth else {
                    throw error("nested deeper than \(StrictJSON.maxDepth) levels", .tooDeep)
                }
                return try array(depth: depth + 1)
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            case UInt8(ascii: "/"):
                throw error("comments are not JSON")
            case UInt8(ascii: "'"):
                throw error("strings take double quotes")
            default:
                throw error(
                    byte == UInt8(ascii: "N") || byte == UInt8(ascii: "I")
                        ? "NaN and Infinity are not JSON numbers" : "expected a value")
            }
        }

        mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            index += 1
            var members: [JSONValue.Member] = []
            var seen = Set<String>()
            skipSpace()
            if current == UInt8(ascii: "}") {
                index += 1
                return .object([])
            }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else {
                    throw error(
                        current == UInt8(ascii: "}")
                            ? "a comma before } (trailing commas are not JSON)" : "expected a key in double quotes")
                }
                let key = try string()
                path.append(.key(key))
                guard seen.insert(key).inserted else {
                    throw error("appears more than once in its object; say it once", .duplicateKey)
                }
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw error("expected : after the key") }
                index += 1
                skipSpace()
                members.append(JSONValue.Member(key: key, value: try value(depth: depth)))
                path.removeLast()
                skipSpace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return .object(members)
                default:
                    throw error(
                        current == UInt8(ascii: "/") ? "comments are not JSON" : "expected , or } after a member")
                }
            }
        }

        mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipSpace()
            if current == UInt8(ascii: "]") {
                index += 1
                return .array([])
            }
            while true {
                skipSpace()
                path.append(.index(elements.count))
                if current == UInt8(ascii: "]") { throw error("a comma before ] (trailing commas are not JSON)") }
                elements.append(try value(depth: depth))
                path.removeLast()
                skipSpace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return .array(elements)
                default:
                    throw error(
                        current == UInt8(ascii: "/") ? "comments are not JSON" : "expected , or ] after an element")
                }
            }
        }

        mutating func literal(_ word: String) throws(JSONSyntaxError) {
            let expected = Array(word.utf8)
            guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
                throw error("expected \(word)")
            }
            index += expected.count
        }

        mutating func digits() -> Int {
            let start = index
            while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            return index - start
        }

        mutating func number() throws(JSONSyntaxError) -> String {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            if current == UInt8(ascii: "0") {
                index += 1
                if let next = current, next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
                    throw error("numbers have no leading zeros")
                }
            } else if digits() == 0 {
                throw error("expected digits")
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("expected digits after the decimal point") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("expected digits in the exponent") }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
            guard bytes.count - index >= 4 else { throw error("\\u needs four hex digits") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("\\u needs four hex digits")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        mutating func string() throws(JSONSyntaxError) -> String {
            index += 1
            var out: [UInt8] = []
            while true {
                guard let byte = current else { throw error("a string is not closed") }
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    guard let text = String(validating: out, as: UTF8.self) else {
                        throw error("a string is not valid UTF-8")
                    }
                    return text
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escape = current else { throw error("a string is not closed") }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"),
                                bytes[index + 1] == UInt8(ascii: "u")
                            else {
                                throw error("a lone UTF-16 surrogate is not a character")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw error("a lone UTF-16 surrogate is not a character")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let character = Unicode.Scalar(scalar) else {
                            throw error("a lone UTF-16 surrogate is not a character")
                        }
                        out.append(contentsOf: Array(String(Character(character)).utf8))
                    default:
                        throw error("\\\(Character(Unicode.Scalar(escape))) is not a JSON escape")
                    }
                case 0..<0x20:
                    throw error("control characters in strings must be escaped")
                default:
                    out.append(byte)
                    index += 1
                }
            }
        }
    }
}
