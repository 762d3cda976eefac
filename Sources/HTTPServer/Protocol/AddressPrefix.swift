import Glibc

/// The network a peer address belongs to: the key of the per-peer connection cap and of the
/// credential throttles, so that many addresses of one network count as one peer (IPv4 /24 and
/// IPv6 /64 by default: what one host or one customer usually holds). Pure.
public struct AddressPrefix: Sendable, Equatable {
    public var ipv4Bits: Int
    public var ipv6Bits: Int

    public init(ipv4Bits: Int = 24, ipv6Bits: Int = 64) {
        self.ipv4Bits = min(max(ipv4Bits, 0), 32)
        self.ipv6Bits = min(max(ipv6Bits, 0), 128)
    }

    /// `"10.1.2.0/24"`, `"2001:db8:0:1::/64"`-style keys (hex groups), or the text itself when it is no address
    /// (a Unix peer, "unknown"). IPv4-mapped IPv6 addresses count as the IPv4 address.
    public func key(_ address: String) -> String {
        var text = Substring(address)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        var v4 = in_addr()
        var v6 = in6_addr()
        // Safety: inet_pton writes at most the size of the address struct it is given.
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            return Self.ipv4Key(withUnsafeBytes(of: v4) { Array($0) }, bits: ipv4Bits)
        }
        guard inet_pton(AF_INET6, String(text), &v6) == 1 else { return address }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return Self.ipv4Key(Array(bytes[12..<16]), bits: ipv4Bits)
        }
        let masked = Self.mask(bytes, bits: ipv6Bits)
        let groups = stride(from: 0, to: 16, by: 2).map {
            String(UInt16(masked[$0]) << 8 | UInt16(masked[$0 + 1]), radix: 16)
        }
        return groups.joined(separator: ":") + "/\(ipv6Bits)"
    }

    static func ipv4Key(_ bytes: [UInt8], bits: Int) -> String {
        mask(bytes, bits: bits).map(String.init).joined(separator: ".") + "/\(bits)"
    }

    static func mask(_ bytes: [UInt8], bits: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let kept = min(max(bits - index * 8, 0), 8)
            return kept == 8 ? byte : byte & ~(UInt8(0xFF) >> kept)
        }
    }
}
