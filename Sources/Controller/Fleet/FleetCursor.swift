import Foundation

/// Where a merged listing of many hosts stopped: each host's own position (the last
/// event id listed from it). Opaque to people, `mgc1.` and base64url of JSON, so one
/// `--cursor` continues every host where it was, and no host drops out. Pure.
public struct FleetCursor: Equatable, Sendable {
    public static let prefix = "mgc1."
    /// Host name → the last event id listed from it (0: none yet).
    public var positions: [String: Int64]

    public init(positions: [String: Int64]) { self.positions = positions }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        /// The cursor was made for other hosts than the listing asks.
        case otherHosts(cursor: [String], asked: [String])

        public var description: String {
            switch self {
            case .malformed(let text):
                "\(text.prefix(40)) is not a cursor memgatectl printed (they begin \(FleetCursor.prefix)); "
                    + "a bare number is one host's position and needs one host"
            case .otherHosts(let cursor, let asked):
                "the cursor holds places on \(cursor.joined(separator: ", ")), but this listing asks \(asked.joined(separator: ", ")): "
                    + "continue with the same hosts (--host, --select or --context) as the listing that printed it"
            }
        }
    }

    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = (try? encoder.encode(positions)) ?? Data("{}".utf8)
        return Self.prefix
            + json.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The cursor in `text`, for exactly the hosts `hosts` (in any order).
    public init(parsing text: String, hosts: [String]) throws(ParseError) {
        guard text.hasPrefix(Self.prefix) else { throw .malformed(text) }
        var base64 = String(text.dropFirst(Self.prefix.count)).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let positions = try? JSONDecoder().decode([String: Int64].self, from: data),
            positions.values.allSatisfy({ $0 >= 0 })
        else { throw .malformed(text) }
        guard Set(positions.keys) == Set(hosts) else {
            throw .otherHosts(cursor: positions.keys.sorted(), asked: hosts.sorted())
        }
        self.positions = positions
    }
}

/// One page of a listing merged from many hosts, without holes: each host hands its
/// rows in event id order and says whether it has more. A row later than the last
/// row of a host that has more could be preceded by that host's next rows, so it is
/// held back for the next page; each host's place moves past what was listed. Pure.
public enum FleetPage {
    public struct HostRows<Row> {
        public var host: String
        public var rows: [Row]
        public var more: Bool
        public init(host: String, rows: [Row], more: Bool) {
            self.host = host
            self.rows = rows
            self.more = more
        }
    }

    /// The rows to list now, in time order (then host order), and the cursor to continue
    /// with (nil when every host's rows were all listed).
    public static func merge<Row>(
        _ hosts: [HostRows<Row>], from start: FleetCursor, time: (Row) -> UInt64, id: (Row) -> Int64
    )
        -> (rows: [(host: String, row: Row)], next: FleetCursor?)
    {
        // The time up to which every host's rows are known.
        let horizon = hosts.filter(\.more).compactMap { $0.rows.map(time).max() }.min() ?? .max
        var positions = start.positions
        var listed: [(order: Int, host: String, row: Row)] = []
        var heldBack = false
        for (order, host) in hosts.enumerated() {
            // A prefix in id order, so the place is exact: every row up to it was listed.
            let prefix = host.rows.prefix { time($0) <= horizon }
            heldBack = heldBack || prefix.count < host.rows.count || host.more
            if let last = prefix.last {
                positions[host.host] = id(last)
            } else if positions[host.host] == nil {
                positions[host.host] = 0
            }
            listed += prefix.map { (order, host.host, $0) }
        }
        let rows = listed.sorted { a, b in
            time(a.row) != time(b.row)
                ? time(a.row) < time(b.row) : a.order != b.order ? a.order < b.order : id(a.row) < id(b.row)
        }.map { (host: $0.host, row: $0.row) }
        return (rows, heldBack ? FleetCursor(positions: positions) : nil)
    }
}
