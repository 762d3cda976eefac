import Foundation

/// One Server-Sent Event as a client sees it.
public struct SSEEvent: Sendable, Equatable {
    /// The last event id when this event was dispatched (its own `id:`, or an earlier one).
    public var id: Int64?
    public var type: String
    public var data: String

    public init(id: Int64?, type: String, data: String) {
        self.id = id; self.type = type; self.data = data
    }
}

/// The `text/event-stream` format (WHATWG HTML §9.2.6): bytes in, whole events out. Pure.
public struct SSEParser: Sendable {
    private var pending: [UInt8] = []
    private var type = ""
    private var data: [String] = []
    /// The last event id seen, also from an `id:` without data (where a reconnection resumes).
    public private(set) var lastEventID: Int64?

    public init(lastEventID: Int64? = nil) {
        self.lastEventID = lastEventID
    }

    /// Bytes buffered that do not end a line yet.
    public var bufferedBytes: Int { pending.count }

    /// The events completed by `bytes` (an event is complete at its blank line).
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        pending += bytes
        var events: [SSEEvent] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            var end = newline
            if end > start, pending[end - 1] == 0x0D { end -= 1 }
            let line = String(decoding: pending[start..<end], as: UTF8.self)
            start = newline + 1
            if line.isEmpty {
                if !data.isEmpty { events.append(SSEEvent(id: lastEventID, type: type.isEmpty ? "message" : type, data: data.joined(separator: "\n"))) }
                type = ""
                data = []
                continue
            }
            if line.hasPrefix(":") { continue }
            let field = line.prefix { $0 != ":" }
            var value = line.dropFirst(field.count).dropFirst()
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch field {
            case "id": if let id = Int64(value) { lastEventID = id }
            case "event": type = String(value)
            case "data": data.append(String(value))
            default: break
            }
        }
        pending.removeFirst(start)
        return events
    }
}
