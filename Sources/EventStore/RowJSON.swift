import CSQLite
import SQLite

/// Renders result rows straight into API JSON (the shape of `APITypes.ConversionEvent`
/// and `FaultEvent`, keys sorted), copying text from SQLite's buffers without
/// intermediate Strings. The hot path of `GET /v1/conversions` and `/v1/memory-faults`.
struct RowJSON {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func unsigned(_ value: UInt64) {
        // Digits are formed right to left in a fixed 20-byte scratch value, then appended at once.
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var rest = value
        var count = 0
        withUnsafeMutableBytes(of: &scratch) { buffer in
            // Safety: at most 20 digits are written into the 24-byte scratch value, from its end.
            repeat {
                count += 1
                buffer[24 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            bytes.append(contentsOf: buffer[(24 - count)...])
        }
    }

    mutating func integer(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        unsigned(value.magnitude)
    }

    /// A text column as a JSON string.
    mutating func text(_ statement: Statement, _ column: Int32) {
        bytes.append(UInt8(ascii: "\""))
        statement.withText(column) { buffer in
            var clean = true
            for byte in buffer where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                clean = false
                break
            }
            if clean {
                bytes.append(contentsOf: buffer)
                return
            }
            for byte in buffer {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), byte]
                case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// One conversion row (columns in `EventQueries.conversionColumns` order).
    mutating func conversion(_ row: Statement) {
        raw(#"{"changed_bytes":"#); unsigned(row.unsigned(13))
        if !row.isNull(4) { raw(#","completed_ns":"#); unsigned(row.unsigned(4)) }
        raw(#","decision":"#); text(row, 9)
        raw(#","direction":"#); text(row, 7)
        raw(#","discarded_bytes":"#); unsigned(row.unsigned(14))
        raw(#","event_id":"#); integer(row.int64(0))
        raw(#","gpa":"#); unsigned(row.unsigned(5))
        raw(#","guest_result":"#); integer(row.int64(15))
        raw(#","policy_version":"#); text(row, 11)
        raw(#","reason":"#); text(row, 10)
        raw(#","requested_ns":"#); unsigned(row.unsigned(3))
        if !row.isNull(16) { raw(#","requested_pages":"#); unsigned(row.unsigned(16)) }
        raw(#","size":"#); unsigned(row.unsigned(6))
        raw(#","source":"#); text(row, 12)
        raw(#","trigger":"#); text(row, 8)
        raw(#","vcpu":"#); integer(row.int64(2))
        raw(#","vm_id":"#); integer(row.int64(1))
        raw("}")
    }

    /// One memory-fault row (columns in `EventQueries.faultColumns` order).
    mutating func fault(_ row: Statement) {
        raw(#"{"event_id":"#); integer(row.int64(0))
        raw(#","flags":"#); unsigned(row.unsigned(6))
        raw(#","gpa":"#); unsigned(row.unsigned(4))
        raw(#","size":"#); unsigned(row.unsigned(5))
        raw(#","source":"#); text(row, 7)
        raw(#","time_ns":"#); unsigned(row.unsigned(3))
        raw(#","vcpu":"#); integer(row.int64(2))
        raw(#","vm_id":"#); integer(row.int64(1))
        raw("}")
    }
}
