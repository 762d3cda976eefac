/// `a=1&b=x%20y` parsed into decoded pairs. Pure.
struct QueryString: Sendable {
    private(set) var values: [String: String] = [:]

    init(_ query: Substring?) throws(APIError) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : "") else {
                throw APIError(400, "invalid_parameter", "query string is not valid percent-encoded UTF-8")
            }
            guard values[name] == nil else { throw .badParameter(name, "given more than once") }
            values[name] = value
        }
    }

    subscript(name: String) -> String? { values[name] }

    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hex), let low = iterator.next().flatMap(hex) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    func integer(_ name: String, in range: ClosedRange<Int64>, default value: Int64) throws(APIError) -> Int64 {
        guard let text = values[name] else { return value }
        guard let number = Int64(text), range.contains(number) else {
            throw .badParameter(name, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    func optionalInteger(_ name: String, in range: ClosedRange<Int64>) throws(APIError) -> Int64? {
        guard values[name] != nil else { return nil }
        return try integer(name, in: range, default: 0)
    }

    /// An address: decimal, or hex with 0x as every address label shows it (`from=0x400000`).
    func optionalAddress(_ name: String, in range: ClosedRange<Int64>) throws(APIError) -> Int64? {
        guard let text = values[name] else { return nil }
        let number = text.hasPrefix("0x") || text.hasPrefix("0X") ? Int64(text.dropFirst(2), radix: 16) : Int64(text)
        guard let number, range.contains(number) else {
            throw .badParameter(
                name, "must be an address from \(range.lowerBound) to \(range.upperBound), in decimal or 0x hex")
        }
        return number
    }

    func choice(_ name: String, of allowed: [String]) throws(APIError) -> String? {
        guard let text = values[name] else { return nil }
        guard allowed.contains(text) else {
            throw .badParameter(name, "must be one of \(allowed.joined(separator: ", "))")
        }
        return text
    }

    /// One of an enum's raw values, the allowed list derived from the enum.
    func choice<Choice: RawRepresentable & CaseIterable>(_ name: String, of type: Choice.Type) throws(APIError)
        -> String?
    where Choice.RawValue == String {
        try choice(name, of: Choice.allCases.map(\.rawValue))
    }
}
