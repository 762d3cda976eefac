import HTTPServer

/// Failed credentials (bearer tokens, status-page sign-ins) by the network they came from, so
/// that guessing is slow without letting strangers lock anyone out. Pure; the clock is passed in.
///
/// - A network (`AddressPrefix`, /24 or /64) may fail `limit` times in a window; then it is
///   throttled for the rest of the window.
/// - While its network is throttled, an address may still present credentials, and a correct one
///   passes; each wrong one counts against that address alone, which is refused unchecked (429)
///   after `addressLimit` of them. Strangers can throttle a network, never lock out a correct token
///   presented from an address they do not hold.
/// - Both tables are bounded: past `capacity` networks, new ones share one `other` allowance;
///   past `capacity` addresses, the one whose window started first is forgotten (a fresh address
///   is never refused).
public struct CredentialThrottle: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// Check the credential.
        case check
        /// Refuse without checking; try again in this many seconds.
        case refuse(retryAfterSeconds: UInt64)
    }

    private struct Window: Sendable {
        var start: UInt64
        var count: Int
    }

    public static let capacity = 4096
    static let overflow = "other"
    public let limit: Int
    public let addressLimit: Int
    public let windowNanos: UInt64
    public let prefix: AddressPrefix
    private var networks: [String: Window] = [:]
    private var addresses: [String: Window] = [:]

    public init(
        limit: Int = 10, addressLimit: Int = 3, windowNanos: UInt64 = 60_000_000_000,
        prefix: AddressPrefix = AddressPrefix()
    ) {
        self.limit = limit
        self.addressLimit = addressLimit
        self.windowNanos = windowNanos
        self.prefix = prefix
    }

    /// Whether to check a credential from `address` now.
    public func verdict(address: String, nowNanos: UInt64) -> Verdict {
        guard let network = live(networks[networkKey(address)], nowNanos), network.count >= limit else { return .check }
        guard let own = live(addresses[address], nowNanos), own.count >= addressLimit else { return .check }
        return .refuse(retryAfterSeconds: (windowNanos - (nowNanos &- own.start)) / 1_000_000_000 + 1)
    }

    /// A credential from `address` was checked and was wrong.
    public mutating func failed(address: String, nowNanos: UInt64) {
        var key = prefix.key(address)
        if networks[key] == nil, networks.count >= Self.capacity {
            networks = networks.filter { live($0.value, nowNanos) != nil }
            // Still full: new networks share one allowance rather than go uncounted.
            if networks.count >= Self.capacity { key = Self.overflow }
        }
        let throttled = (live(networks[key], nowNanos)?.count ?? 0) >= limit
        Self.count(&networks[key], nowNanos, windowNanos)
        guard throttled else { return }
        if addresses[address] == nil, addresses.count >= Self.capacity {
            addresses = addresses.filter { live($0.value, nowNanos) != nil }
            if addresses.count >= Self.capacity,
                let oldest = addresses.min(by: { $0.value.start < $1.value.start })?.key
            {
                addresses[oldest] = nil
            }
        }
        Self.count(&addresses[address], nowNanos, windowNanos)
    }

    /// The network key of an address (what `failed` counts under, unless the table is full).
    func networkKey(_ address: String) -> String {
        let key = prefix.key(address)
        return networks[key] == nil && networks.count >= Self.capacity ? Self.overflow : key
    }

    private func live(_ window: Window?, _ nowNanos: UInt64) -> Window? {
        guard let window, nowNanos &- window.start < windowNanos else { return nil }
        return window
    }

    private static func count(_ window: inout Window?, _ nowNanos: UInt64, _ windowNanos: UInt64) {
        if let current = window, nowNanos &- current.start < windowNanos {
            window = Window(start: current.start, count: current.count + 1)
        } else {
            window = Window(start: nowNanos, count: 1)
        }
    }
}
