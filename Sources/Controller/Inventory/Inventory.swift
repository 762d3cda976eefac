/// One agent of the fleet.
public struct HostEntry: Sendable, Equatable {
    /// `http://host:port`, `https://host:port` or `unix:///path/to.sock`.
    public var url: String
    /// How rows and reports name it (default: the URL's authority or socket path).
    public var name: String
    public var labels: [String: String]

    public init(url: String, name: String? = nil, labels: [String: String] = [:]) throws(InventoryError) {
        guard let endpoint = Endpoint(url) else {
            throw InventoryError(message: "\(url) is not http://HOST:PORT, https://HOST:PORT or unix:///PATH")
        }
        self.url = url
        self.name = name ?? endpoint.defaultName
        self.labels = labels
    }
}

public struct InventoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Where a host's API is: a base URL, or a Unix socket (requests go to http://localhost).
public struct Endpoint: Sendable, Equatable {
    public var baseURL: String
    public var unixSocket: String?

    public init?(_ url: String) {
        if url.hasPrefix("unix://") {
            let path = String(url.dropFirst("unix://".count))
            guard path.hasPrefix("/"), path.count > 1 else { return nil }
            baseURL = "http://localhost"
            unixSocket = path
            return
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { return nil }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        let authority = Self.authority(of: base)
        guard !authority.isEmpty, !authority.contains(where: { $0 == " " || $0 == "@" }) else { return nil }
        baseURL = base
        unixSocket = nil
    }

    /// The host is an IPv4 address or a bracketed IPv6 one (or a Unix socket): nothing to resolve.
    public var isAddressLiteral: Bool {
        if unixSocket != nil { return true }
        let authority = Self.authority(of: baseURL)
        if authority.hasPrefix("[") { return authority.contains("]") }
        let host = authority.split(separator: ":", maxSplits: 1).first ?? ""
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4
            && octets.allSatisfy {
                !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && (Int($0) ?? 256) <= 255
            }
    }

    var defaultName: String {
        if let unixSocket { return unixSocket }
        return String(Self.authority(of: baseURL))
    }

    /// `host:port` of `scheme://host:port/...` (empty when there is none).
    private static func authority(of url: String) -> Substring {
        url.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first ?? ""
    }
}

/// The hosts a command talks to: from `--hosts FILE`, `--host URL` and `MEMGATE_HOSTS`. Pure.
public enum Inventory {
    /// Parses a hosts file: one host a line, `URL [NAME] [key=value ...]`, `#` comments.
    public static func parse(_ text: String, source: String = "hosts") throws(InventoryError) -> [HostEntry] {
        var hosts: [HostEntry] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let url = fields.first else { continue }
            var name: String?
            var labels: [String: String] = [:]
            for field in fields.dropFirst() {
                if let equals = field.firstIndex(of: "=") {
                    let key = String(field[..<equals]), value = String(field[field.index(after: equals)...])
                    guard !key.isEmpty else {
                        throw InventoryError(message: "\(source):\(number + 1): label without a key: \(field)")
                    }
                    labels[key] = value
                } else if name == nil && labels.isEmpty {
                    name = field
                } else {
                    throw InventoryError(
                        message: "\(source):\(number + 1): expected URL [NAME] [key=value ...], got \(field)")
                }
            }
            do {
                hosts.append(try HostEntry(url: url, name: name, labels: labels))
            } catch {
                throw InventoryError(message: "\(source):\(number + 1): \(error.message)")
            }
        }
        return hosts
    }

    /// `MEMGATE_HOSTS`: URLs separated by commas or whitespace.
    public static func parseList(_ text: String) throws(InventoryError) -> [HostEntry] {
        var hosts: [HostEntry] = []
        for url in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }) {
            hosts.append(try HostEntry(url: String(url)))
        }
        return hosts
    }

    /// `label=value` selectors, all of which a host must match.
    public static func select(_ hosts: [HostEntry], where selectors: [String]) throws(InventoryError) -> [HostEntry] {
        var wanted: [(String, String)] = []
        for selector in selectors {
            guard let equals = selector.firstIndex(of: "="), equals != selector.startIndex else {
                throw InventoryError(message: "--select takes label=value, not \(selector)")
            }
            wanted.append((String(selector[..<equals]), String(selector[selector.index(after: equals)...])))
        }
        return hosts.filter { host in wanted.allSatisfy { host.labels[$0.0] == $0.1 } }
    }

    /// Names must be unique: they label every row.
    public static func checkUniqueNames(_ hosts: [HostEntry]) throws(InventoryError) {
        var seen: Set<String> = []
        for host in hosts where !seen.insert(host.name).inserted {
            throw InventoryError(message: "two hosts are named \(host.name); give each a NAME in the hosts file")
        }
    }
}
