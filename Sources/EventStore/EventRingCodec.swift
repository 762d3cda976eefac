import SQLite
/// The bytes of one ring record: the statements a record consists of, with
/// their bound values. Pure, so it can be tested without files.
///
///     count u16, then per statement: statement index u8, value count u16,
///     then per value: tag u8 (0 null, 1 integer, 2 text), i64 or (u32 length, UTF-8)
///
/// Only the event (and admitted API request) statements can be carried: a ring file is never trusted to run anything else.
enum EventRingCodec {
    /// The statements a record may carry, by the number stored in ring files (only ever append).
    enum Statement: UInt8, CaseIterable, Sendable {
        case insertFault, insertConversion, finishConversion, insertAPIRequest, insertFaultWithAccess, insertVMConversion

        var sql: String {
            switch self {
            case .insertFault: EventStore.insertFault
            case .insertConversion: EventStore.insertConversion
            case .finishConversion: EventStore.finishConversion
            case .insertAPIRequest: EventStore.insertAPIRequest
            case .insertFaultWithAccess: EventStore.insertFaultWithAccess
            case .insertVMConversion: EventStore.insertVMConversion
            }
        }
    }

    /// nil when a write is not an event statement (the caller then waits for SQLite instead).
    static func encode(_ writes: [EventWriter.Write]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        append(UInt16(truncatingIfNeeded: writes.count), to: &out)
        for write in writes {
            guard let statement = write.ringStatement else { return nil }
            out.append(statement.rawValue)
            append(UInt16(truncatingIfNeeded: write.values.count), to: &out)
            for value in write.values {
                switch value {
                case .null:
                    out.append(0)
                case .integer(let number):
                    out.append(1)
                    append(UInt64(bitPattern: number), to: &out)
                case .text(let text):
                    out.append(2)
                    appendText(text, to: &out)
                }
            }
        }
        return out
    }

    /// nil when the bytes are not a whole record (never trusted further than their own lengths).
    static func decode(_ bytes: [UInt8]) -> [EventWriter.Write]? {
        var reader = Reader(bytes: bytes)
        guard let count = reader.integer(UInt16.self) else { return nil }
        var writes: [EventWriter.Write] = []
        for _ in 0..<count {
            guard let statement = reader.byte().flatMap(Statement.init(rawValue:)), let valueCount = reader.integer(UInt16.self) else {
                return nil
            }
            var values: [SQLValue] = []
            for _ in 0..<valueCount {
                switch reader.byte() {
                case 0: values.append(.null)
                case 1:
                    guard let number = reader.integer(UInt64.self) else { return nil }
                    values.append(.integer(Int64(bitPattern: number)))
                case 2:
                    guard let text = reader.text() else { return nil }
                    values.append(.text(text))
                default: return nil
                }
            }
            writes.append(EventWriter.Write(statement, values: values))
        }
        return reader.atEnd ? writes : nil
    }

    /// FNV-1a: enough to tell a whole record from one a crash cut short.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in bytes { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
        return hash
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        for index in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    private static func appendText(_ text: String, to out: inout [UInt8]) {
        let utf8 = Array(text.utf8)
        append(UInt32(truncatingIfNeeded: utf8.count), to: &out)
        out.append(contentsOf: utf8)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> T? {
            let size = MemoryLayout<T>.size
            guard bytes.count - offset >= size else { return nil }
            var value: T = 0
            for index in 0..<size { value |= T(bytes[offset + index]) << (8 * index) }
            offset += size
            return value
        }

        mutating func text() -> String? {
            guard let length = integer(UInt32.self), bytes.count - offset >= Int(length) else { return nil }
            defer { offset += Int(length) }
            return String(decoding: bytes[offset..<offset + Int(length)], as: UTF8.self)
        }
    }
}
