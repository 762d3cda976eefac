/// Little-endian fields of the ring records (the agent's ring and every VM's). Pure.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        for index in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    mutating func optional(_ value: UInt64?) {
        bytes.append(value == nil ? 0 : 1)
        integer(value ?? 0)
    }

    mutating func text(_ text: String) {
        let utf8 = Array(text.utf8)
        integer(UInt32(truncatingIfNeeded: utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func data(_ data: [UInt8]) {
        integer(UInt32(truncatingIfNeeded: data.count))
        bytes.append(contentsOf: data)
    }
}

/// Reads what `ByteWriter` wrote; every read is checked against the bytes, so nothing
/// in them is trusted beyond its own lengths. Pure.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset == bytes.count }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { return nil }
        var value: T = 0
        for index in 0..<size { value |= T(truncatingIfNeeded: bytes[offset + index]) << (8 * index) }
        offset += size
        return value
    }

    mutating func optional() -> UInt64?? {
        guard let present = byte(), present <= 1, let value = integer(UInt64.self) else { return nil }
        return .some(present == 1 ? value : nil)
    }

    mutating func data() -> [UInt8]? {
        guard let length = integer(UInt32.self), bytes.count - offset >= Int(length) else { return nil }
        defer { offset += Int(length) }
        return Array(bytes[offset..<offset + Int(length)])
    }

    mutating func text() -> String? { data().map { String(decoding: $0, as: UTF8.self) } }

    mutating func value<T: RawRepresentable>(_: T.Type) -> T? where T.RawValue == String {
        text().flatMap(T.init(rawValue:))
    }
}
