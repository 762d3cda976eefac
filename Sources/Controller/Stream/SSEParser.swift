import Foundation

/// One Server-Sent Event as a client sees it.
public struct SSEEvent: Sendable, Equatable {
    /// The last event id when this event was dispatched (its own `id:`, or an earlier one).
    public var id: Int64?
    public var type: String
    public var data: String

    public init(id: Int64?, type: String, data: String) {
        self.id = id
        self.type = type
        self.data = data
    }
}

/// Why a stream's bytes cannot be read as events.
public enum SSEParserError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One event (its unfinished line included) grew past the parser's limit: the sender is
    /// broken or hostile, and the stream cannot go on without holding unbounded memory.
    case eventTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .eventTooLarge(let limit): return "the agent sent an event larger than \(limit) bytes"
        }
    }
}

/// The `text/event-stream` format (WHATWG HTML §9.2.6): bytes in, whole events out. Pure.
public struct SSEParser: Sendable {
    /// An agent's events are a few hundred bytes; this bounds what a broken one can make us hold.
    public static let defaultMaxEventBytes = 1 << 20

    public let maxEventBytes: Int
    private var pending: [UInt8] = []
    private var type = ""
    /// The event's data lines joined by LF, as they will be handed over: what it holds is what
    /// counts against `maxEventBytes`, so a flood of empty `data:` lines counts a byte each.
    private var data: [UInt8] = []
    private var dataLines = 0
    /// The last event id seen, also from an `id:` without data (where a reconnection resumes).
    public private(set) var lastEventID: Int64?

    public init(lastEventID: Int64? = nil, maxEventBytes: Int = SSEParser.defaultMaxEventBytes) {
        self.lastEventID = lastEventID
        self.maxEventBytes = maxEventBytes
    }

    private var isOverLimit: Bool { data.count + pending.count > maxEventBytes }

    /// The events completed by `bytes` (an event is complete at its blank line). Throws once
    /// the unfinished event passes `maxEventBytes` — after handing over the events completed
    /// before it, so none is lost; the caller then drops the stream.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(SSEParserError) -> [SSEEvent] {
        guard !isOverLimit else { throw .eventTooLarge(limit: maxEventBytes) }
        pending += bytes
        var events: [SSEEvent] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            var end = newline
            if end > start, pending[end - 1] == 0x0D { end -= 1 }
            let line = String(decoding: pending[start..<end], as: UTF8.self)
            start = newline + 1
            if line.isEmpty {
                if dataLines > 0 {
                    events.append(
                        SSEEvent(
                            id: lastEventID, type: type.isEmpty ? "message" : type,
                            data: String(decoding: data, as: UTF8.self)))
                }
                type = ""
                data = []
                dataLines = 0
                continue
            }
            if line.hasPrefix(":") { continue }
            let field = line.prefix { $0 != ":" }
            var value = line.dropFirst(field.count).dropFirst()
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch field {
            case "id": if let id = Int64(value) { lastEventID = id }
            case "event": type = String(value)
            case "data":
                if dataLines > 0 { data.append(0x0A) }
                data += value.utf8
                dataLines += 1
            default: break
            }
        }
        pending.removeFirst(start)
        if isOverLimit && events.isEmpty { throw .eventTooLarge(limit: maxEventBytes) }
        return events
    }
}
