import Controller
import Foundation
import Glibc
import Synchronization

extension SSEEvent {
    /// The event's JSON data as an object.
    public var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
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
                // An event past the parser's limit ends the test's stream, as it would the controller's.
                guard let events = try? parser.feed(chunk) else { break }
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
