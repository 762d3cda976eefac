/// A minimal JSON byte writer for the hot responses (pages of events), about
/// ten times faster than `JSONEncoder`. The output has the same keys (snake_case,
/// sorted) and is decodable by `APIJSON.decoder()`.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    fileprivate var needsComma = false

    public init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        comma()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray(_ key: StaticString) {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
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
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        let copied = text.utf8.withContiguousStorageIfAvailable { buffer -> Bool in
            for byte in buffer where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            bytes.append(contentsOf: buffer)
            return true
        }
        if copied == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
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

extension FaultEvent: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("event_id", eventId)
        w.field("flags", flags)
        w.field("gpa", gpa)
        w.field("size", size)
        w.field("source", source)
        w.field("time_ns", timeNs)
        w.field("vcpu", vcpu)
        w.field("vm_id", vmId)
        w.endObject()
    }
}

extension ConversionEvent: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed_bytes", changedBytes)
        if let completedNs { w.field("completed_ns", completedNs) }
        w.field("decision", decision)
        w.field("direction", direction)
        w.field("discarded_bytes", discardedBytes)
        w.field("event_id", eventId)
        w.field("gpa", gpa)
        w.field("guest_result", guestResult)
        w.field("policy_version", policyVersion)
        w.field("reason", reason)
        w.field("requested_ns", requestedNs)
        if let requestedPages { w.field("requested_pages", requestedPages) }
        w.field("size", size)
        w.field("source", source)
        w.field("trigger", trigger)
        w.field("vcpu", vcpu)
        w.field("vm_id", vmId)
        w.endObject()
    }
}

extension EventEntry: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        if let conversion {
            w.key("conversion")
            conversion.write(to: &w)
        }
        w.field("event_id", eventId)
        w.field("kind", kind)
        if let memoryFault {
            w.key("memory_fault")
            memoryFault.write(to: &w)
        }
        w.endObject()
    }
}

extension EventPage: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.beginArray("events")
        for event in events { event.write(to: &w) }
        w.endArray()
        w.field("next_after", nextAfter)
        w.endObject()
    }
}

extension JSONWriter {
    public mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        bytes += value ? Array("true".utf8) : Array("false".utf8)
        needsComma = true
    }
}

extension PolicyValidation: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed", changed)
        w.field("current_version", currentVersion)
        if let field { w.field("field", field) }
        if let message { w.field("message", message) }
        w.field("valid", valid)
        if let version { w.field("version", version) }
        w.endObject()
    }
}

extension PolicyApplied: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed", changed)
        w.field("version", version)
        w.endObject()
    }
}
