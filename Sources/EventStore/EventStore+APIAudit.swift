import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
import Synchronization

/// The API's audit: admitted writes a row each, refusals counted.
extension EventStore {
    static let insertAPIRequest = """
        INSERT INTO api_requests (time_ns, method, path, status, duration_ns, client) VALUES (?, ?, ?, ?, ?, ?)
        """
    static let countRefusals = """
        INSERT INTO api_refusals (second, peer, kind, requests) VALUES (?, ?, ?, ?)
        ON CONFLICT (second, peer, kind) DO UPDATE SET requests = requests + excluded.requests
        """

    /// Longest path an audit row keeps (longer ones are cut and marked with "…").
    public static let maxAuditedPathBytes = 256

    /// Records one admitted API request that changed something, durably like an event
    /// (in the ring at once, or committed); returns the store's failure if it could not be.
    @discardableResult
    public func recordAPIRequest(
        method: String, path: String, status: Int, durationNanos: UInt64, client: String,
        atNanos time: UInt64
    ) -> RecordingFailure? {
        let (_, sequence, durable) = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        .insertAPIRequest,
                        values: [
                            .unsigned(time), .text(method), .text(Self.truncated(path, to: Self.maxAuditedPathBytes)),
                            .integer(Int64(status)), .unsigned(durationNanos), .text(Self.truncated(client, to: 128)),
                        ])
                ]
            )
        }
        return durable ? nil : writer.waitCommitted(sequence)
    }

    /// Adds counts of refused requests (one row per second, peer and kind; asynchronously).
    public func recordRefusals(_ counts: [RefusalCount]) {
        guard !counts.isEmpty else { return }
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                counts.map { count in
                    EventWriter.Write(
                        sql: Self.countRefusals,
                        values: [
                            .unsigned(count.second), .text(Self.truncated(count.peer, to: 64)),
                            .text(count.kind.rawValue),
                            .unsigned(count.requests),
                        ])
                }
            )
        }
    }

    /// `text` cut to at most `limit` UTF-8 bytes on a character boundary, "…" marking a cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var kept = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= limit - 3 else { break }
            kept.append(character)
            bytes += size
        }
        return kept + "…"
    }

    /// Records that `policy` was applied (its first application also stores the document).
}
