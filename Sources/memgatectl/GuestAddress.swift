import ArgumentParser

/// A guest-physical address as a person types it: `0x400000` (as every label shows
/// addresses) or decimal.
enum GuestAddress {
    static func parse(_ text: String) throws -> UInt64 {
        let digits = text.lowercased().hasPrefix("0x") ? text.dropFirst(2) : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(\.isHexDigit),
            let value = UInt64(digits, radix: text.lowercased().hasPrefix("0x") ? 16 : 10)
        else {
            throw ValidationError("an address is hex with 0x (0x400000) or decimal (4194304), not \(text)")
        }
        return value
    }
}
