import Foundation
import Glibc
import Synchronization

/// One Server-Sent Event as a client sees it.
public struct SSEEvent: Sendable, Equatable {
    public var id: Int64?
    public var type: String
    public var data: String

    /// The event's JSON data as an object.
    public var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
    }
}

/// The `text/event-stream` format (WHATWG HTML §9.2.6): lines in, whole events out. Pure.
public struct SSEParser: Sendable {
    private var pending: [UInt8] = []
    private var id: Int64?
    private var type = ""
    private var data: [String] = []

    public init() {}

    /// The events completed by `bytes` (an event is complete at its blank line).
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        pending += bytes
        var events: [SSEEvent] = []
        while let newline = pending.firstIndex(of: 0x0A) {
            var line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty {
                if !data.isEmpty || !type.isEmpty { events.append(SSEEvent(id: id, type: type.isEmpty ? "message" : type, data: data.joined(separator: "\n"))) }
                type = ""
                data = []
                continue
            }
            if line.hasPrefix(":") { continue }
            let field = line.prefix { $0 != ":" }
            var value = line.dropFirst(field.count).dropFirst()
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch field {
            case "id": id = Int64(value)
            case "event": type = String(value)
            case "data": data.append(String(value))
            default: break
            }
        }
        return events
    }
}

/// `curl -N` reading an agent's event stream: a real SSE client that is not ours,
/// killed (SIGKILL) at any point the test likes.
public final class CurlEventStream: @unchecked Sendable {
    private let process = Process()
    private final class Received: Sendable {
        let state = Mutex<(events: [SSEEvent], ended: Bool)>(([], false))
    }
    private let received = Received()
    private let reader: Thread

    /// - Parameters:
    ///   - lastEventID: sent as `Last-Event-ID` (what a reconnecting EventSource sends).
    public init(url: String, token: String, lastEventID: Int64? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-sSN", "-H", "Authorization: Bearer \(token)"]
        if let lastEventID { arguments += ["-H", "Last-Event-ID: \(lastEventID)"] }
        process.arguments = arguments + [url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = pipe.fileHandleForReading
        let received = self.received
        reader = Thread {
            var parser = SSEParser()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                let events = parser.feed(chunk)
                received.state.withLock { $0.events += events }
            }
            received.state.withLock { $0.ended = true }
        }
        reader.start()
    }

    deinit { kill() }

    public var events: [SSEEvent] { received.state.withLock { $0.events } }
    /// The stream closed (the agent ended it, or curl was killed).
    public var ended: Bool { received.state.withLock { $0.ended } }

    /// Waits until `done` holds for the events so far, or the stream ends, or `seconds` pass.
    @discardableResult
    public func wait(seconds: Double = 60, until done: ([SSEEvent]) -> Bool) -> [SSEEvent] {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            let (events, ended) = received.state.withLock { ($0.events, $0.ended) }
            if done(events) || ended { return events }
            usleep(2_000)
        }
        return events
    }

    /// SIGKILL: the connection drops wherever the stream is, mid-event included. Returns
    /// once every whole event curl had written is parsed (a cut-off one is not an event).
    @discardableResult
    public func kill() -> [SSEEvent] {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return wait(seconds: 10) { _ in false }
    }
}
