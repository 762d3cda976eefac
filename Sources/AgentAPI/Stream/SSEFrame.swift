import EventStore
import JSON

/// Server-Sent Events framing (WHATWG HTML §9.2): pure, so the bytes can be tested without a socket.
public enum SSEFrame {
    /// One event: `id:`, `event:`, one `data:` line (the JSON holds no newline), blank line.
    public static func event(id: Int64, type: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + type.utf8.count + 40)
        append(id: id, type: type, data: data, to: &out)
        return out
    }

    public static func append(id: Int64, type: String, data: [UInt8], to out: inout [UInt8]) {
        out += idPrefix
        out += String(id).utf8
        out += eventPrefix
        out += type.utf8
        out += dataPrefix
        out += data
        out += end
    }

    /// Tells the browser how long to wait before reconnecting, sent first.
    public static func retry(milliseconds: Int) -> [UInt8] { Array("retry: \(milliseconds)\n\n".utf8) }

    /// Only an id: moves a client's last event id without an event (WHATWG: dispatch sets it, then drops empty data).
    public static func position(_ id: Int64) -> [UInt8] { Array("id: \(id)\n\n".utf8) }

    /// A comment: keeps idle connections (and the proxies between) open; clients ignore it.
    public static let heartbeat = Array(": heartbeat\n\n".utf8)

    /// The last event of a stream whose reader fell behind its buffer: where to resume.
    public static func overflow(resumeAfter id: Int64, bufferBytes: Int) -> [UInt8] {
        var body = JSONWriter(capacity: 160)
        body.beginObject()
        body.field(
            "message",
            "this reader fell more than \(bufferBytes) bytes behind; reconnect with Last-Event-ID: \(id) to resume without loss"
        )
        body.field("resume_after", id)
        body.endObject()
        return event(id: id, type: "overflow", data: body.bytes)
    }

    /// Sent once to a reader resuming from before what `db prune` deleted.
    public static func pruned(after id: Int64, through: Int64) -> [UInt8] {
        var body = JSONWriter(capacity: 200)
        body.beginObject()
        body.field("after", id)
        body.field(
            "message",
            "events up to id \(through) of VMs that had ended were pruned from this agent's store; the events that remain follow"
        )
        body.field("pruned_through", through)
        body.endObject()
        return event(id: id, type: "pruned", data: body.bytes)
    }

    private static let idPrefix = Array("id: ".utf8)
    private static let eventPrefix = Array("\nevent: ".utf8)
    private static let dataPrefix = Array("\ndata: ".utf8)
    private static let end = Array("\n\n".utf8)
}

/// Which events a stream carries (`?vm=`, `?kind=`): pure.
public struct StreamFilter: Sendable, Equatable {
    /// The event types a stream may name in `kind` (`vm` stands for every lifecycle type).
    public static let kinds = [
        "memory_fault", "conversion", "vm", "vm_created", "vm_started", "vm_paused", "vm_resumed", "vm_ended",
        "policy_applied",
    ]
    public var vm: Int64?
    /// nil: every kind.
    public var kinds: Set<String>?

    public init(vm: Int64? = nil, kinds: Set<String>? = nil) {
        self.vm = vm
        self.kinds = kinds
    }

    /// No filter at all: every reader with it shares one copy of the window's bytes.
    public var passesEverything: Bool { vm == nil && kinds == nil }

    public func matches(_ event: StreamEvent) -> Bool {
        if let vm, event.vmID != vm { return false }
        guard let kinds else { return true }
        return kinds.contains(event.kind) || (event.kind.hasPrefix("vm_") && kinds.contains("vm"))
    }
}
