/// The project's one JSON byte writer (and its one string escaper and integer
/// formatter): the hot responses (pages of events, rows straight from SQLite) and
/// every error body. About ten times faster than `JSONEncoder`; API types that
/// write themselves with it keep the keys `JSONEncoder` would (snake_case, sorted).
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        comma()
        open(UInt8(ascii: "{"))
    }

    public mutating func endObject() { close(UInt8(ascii: "}")) }

    public mutating func beginArray(_ key: StaticString) {
        self.key(key)
        open(UInt8(ascii: "["))
    }

    public mutating func endArray() { close(UInt8(ascii: "]")) }

    private mutating func open(_ bracket: UInt8) {
        bytes.append(bracket)
        needsComma = false
    }

    private mutating func close(_ bracket: UInt8) {
        bytes.append(bracket)
        needsComma = true
    }

    public mutating func key(_ name: StaticString) {
        comma()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func field(_ name: StaticString, _ value: Int64) {
        key(name)
        appendInteger(value)
        needsComma = true
    }

    public mutating func field(_ name: StaticString, _ value: UInt64) {
        key(name)
        appendUnsigned(value)
        needsComma = true
    }

    public mutating func field(_ name: StaticString, _ value: Int) { field(name, Int64(value)) }

    public mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        bytes += value ? Array("true".utf8) : Array("false".utf8)
        needsComma = true
    }

    /// A string field from UTF-8 bytes owned by someone else (an SQLite column), copied once.
    public mutating func field(_ name: StaticString, utf8 value: UnsafeBufferPointer<UInt8>) {
        key(name)
        appendString(utf8: value)
        needsComma = true
    }

    public mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        appendString(value)
        needsComma = true
    }

    private mutating func comma() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func appendUnsigned(_ value: UInt64) {
        // Digits least significant first, then reversed in place: no temporary array.
        let start = bytes.count
        var rest = value
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    private mutating func appendInteger(_ value: Int64) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            appendUnsigned(value.magnitude)
        } else {
            appendUnsigned(UInt64(value))
        }
    }

    private mutating func appendString(_ text: String) {
        var text = text
        text.withUTF8 { appendString(utf8: $0) }
    }

    private mutating func appendString(utf8 text: UnsafeBufferPointer<UInt8>) {
        Self.appendString(utf8: text, to: &bytes)
    }

    /// `text` as a JSON string literal at the end of `out`.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendString(utf8: $0, to: &out) }
    }

    /// The one JSON string escaper: quotes, backslashes and control characters; everything else as is.
    static func appendString(utf8 text: UnsafeBufferPointer<UInt8>, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        if !text.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            bytes.append(contentsOf: text)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in text {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Types that write themselves with `JSONWriter` (the same shape as their Codable form).
public protocol JSONWritable {
    func write(to writer: inout JSONWriter)
}
