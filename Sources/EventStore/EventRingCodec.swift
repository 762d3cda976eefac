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
        case insertFault, insertConversion, finishConversion, insertAPIRequest, insertFaultWithAccess,
            insertVMConversion

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
        var out = ByteWriter()
        out.bytes.reserveCapacity(256)
        out.integer(UInt16(truncatingIfNeeded: writes.count))
        for write in writes {
            guard let statement = write.ringStatement else { return nil }
            out.bytes.append(statement.rawValue)
            out.integer(UInt16(truncatingIfNeeded: write.values.count))
            for value in write.values {
                switch value {
                case .null:
                    out.bytes.append(0)
                case .integer(let number):
                    out.bytes.append(1)
                    out.integer(UInt64(bitPattern: number))
                case .text(let text):
                    out.bytes.append(2)
                    out.text(text)
                }
            }
        }
        return out.bytes
    }

    /// nil when the bytes are not a whole record (never trusted further than their own lengths).
    static func decode(_ bytes: [UInt8]) -> [EventWriter.Write]? {
        var reader = ByteReader(bytes)
        guard let count = reader.integer(UInt16.self) else { return nil }
        var writes: [EventWriter.Write] = []
        for _ in 0..<count {
            guard let statement = reader.byte().flatMap(Statement.init(rawValue:)),
                let valueCount = reader.integer(UInt16.self)
            else {
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
}
