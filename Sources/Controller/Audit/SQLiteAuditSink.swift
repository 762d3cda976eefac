import APITypes
import Foundation
import SQLite

/// The fleet audit database as one SQLite file (schema: `FleetMigrations/`).
public final class SQLiteAuditSink: AuditSink {
    private let connection: SQLiteConnection

    public init(path: String) throws(AuditError) {
        do {
            connection = try Migrator.openForWriting(path: path)
            guard let url = Bundle.module.url(forResource: "FleetMigrations", withExtension: nil) else {
                throw AuditError("the FleetMigrations resource is missing from the build")
            }
            try Migrator.migrate(connection, try Migrator.load(directory: url))
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError("\(path): \(error)")
        }
    }

    private func transaction(_ body: () throws(SQLiteError) -> Void) throws(AuditError) {
        do throws(SQLiteError) {
            try connection.transaction { () throws(SQLiteError) in try body() }
        } catch {
            throw AuditError("fleet database: \(error)")
        }
    }

    public func cursor(host: String, url: String) throws(AuditError) -> Int64 {
        var cursor: Int64 = 0
        try transaction { () throws(SQLiteError) in
            try connection.query(
                "INSERT INTO hosts (host, url) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET url = excluded.url",
                [.text(host), .text(url)])
            cursor = try connection.scalar("SELECT after_event_id FROM hosts WHERE host = ?", [.text(host)]) ?? 0
        }
        return cursor
    }

    public func write(host: String, events: [EventEntry], after: Int64, head: StoredChainHead?, atNanos: UInt64)
        throws(AuditError)
    {
        try transaction { () throws(SQLiteError) in
            for event in events {
                let chain = event.chain.map(SQLValue.text) ?? .null
                if let fault = event.memoryFault {
                    try connection.query(
                        """
                        INSERT OR IGNORE INTO memory_faults (host, event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access, chain)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .text(host), .integer(fault.eventId), .integer(fault.vmId), .integer(Int64(fault.vcpu)),
                            .unsigned(fault.timeNs), .unsigned(fault.gpa), .unsigned(fault.size),
                            .unsigned(fault.flags),
                            .text(fault.source), fault.knownAccess.map(SQLValue.text) ?? .null, chain,
                        ])
                }
                if let c = event.conversion {
                    try connection.query(
                        """
                        INSERT OR IGNORE INTO conversions (host, event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction,
                            trigger, decision, reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, chain)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .text(host), .integer(c.eventId), .integer(c.vmId), .integer(Int64(c.vcpu)),
                            .unsigned(c.requestedNs),
                            .optional(c.completedNs), .unsigned(c.gpa), .unsigned(c.size), .text(c.direction),
                            .text(c.trigger),
                            .text(c.decision), .text(c.reason), .text(c.policyVersion), .text(c.source),
                            .unsigned(c.changedBytes), .unsigned(c.discardedBytes), .integer(c.guestResult), chain,
                        ])
                }
                if let e = event.vmEvent {
                    try connection.query(
                        """
                        INSERT OR IGNORE INTO vm_events (host, event_id, vm_id, time_ns, what, final_state, reason, exit_status, chain)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .text(host), .integer(e.eventId), .integer(e.vmId), .unsigned(e.timeNs), .text(e.what),
                            e.finalState.map(SQLValue.text) ?? .null, e.reason.map(SQLValue.text) ?? .null,
                            e.exitStatus.map { .integer(Int64($0)) } ?? .null, chain,
                        ])
                }
            }
            try connection.query(
                "UPDATE hosts SET after_event_id = max(after_event_id, ?), last_pull_ns = ? WHERE host = ?",
                [.integer(after), .unsigned(atNanos), .text(host)])
            if let head {
                try connection.query(
                    "UPDATE hosts SET chain_event_id = ?, chain = ? WHERE host = ?",
                    [.integer(head.id), .text(head.chain), .text(host)])
            }
        }
    }

    public func chainHead(host: String, chain: String) throws(AuditError) -> StoredChainHead? {
        var head: StoredChainHead?
        let columns = chain == "requests" ? "request_chain_id, request_chain" : "chain_event_id, chain"
        try transaction { () throws(SQLiteError) in
            if let row = try connection.query("SELECT \(columns) FROM hosts WHERE host = ?", [.text(host)]).first,
                case .integer(let id) = row[0], case .text(let value) = row[1]
            {
                head = StoredChainHead(id: id, chain: value)
            }
        }
        return head
    }

    public func record(host: String, break found: ChainBreak, atNanos: UInt64) throws(AuditError) {
        try transaction { () throws(SQLiteError) in
            try connection.query(
                """
                INSERT INTO fleet_chain_breaks (host, chain, detected_ns, row_id, after_id, expected, found, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(host), .text(found.chain), .unsigned(atNanos), .integer(found.id), .integer(found.afterID),
                    found.expected.map(SQLValue.text) ?? .null, found.found.map(SQLValue.text) ?? .null,
                    .text(found.reason),
                ])
        }
    }

    public func recordCut(host: String, chain: String, from: Int64, through: Int64, pruned: Int64, atNanos: UInt64)
        throws(AuditError)
    {
        try transaction { () throws(SQLiteError) in
            try connection.query(
                """
                INSERT OR IGNORE INTO fleet_chain_cuts (host, chain, from_id, through_id, pruned, detected_ns) VALUES (?, ?, ?, ?, ?, ?)
                """,
                [.text(host), .text(chain), .integer(from), .integer(through), .integer(pruned), .unsigned(atNanos)])
        }
    }

    public func write(host: String, vms: [VMInfo]) throws(AuditError) {
        try transaction { () throws(SQLiteError) in
            for vm in vms {
                let labels =
                    (try? JSONSerialization.data(withJSONObject: vm.labels, options: [.sortedKeys]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                try connection.query(
                    """
                    INSERT OR REPLACE INTO vms (host, vm_id, name, labels, memory_mib, vcpus, backend, initial_state, state, reason,
                                                created_ns, ended_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(host), .integer(vm.id), .text(vm.name), .text(labels), .unsigned(vm.memoryMib),
                        .integer(Int64(vm.vcpus)),
                        .text(vm.backend), .text(vm.initialState), .text(vm.state),
                        vm.reason.map { .text($0) } ?? .null,
                        .unsigned(vm.createdNs), .optional(vm.endedNs),
                    ])
            }
        }
    }

    public func missingDocuments(_ versions: Set<String>) throws(AuditError) -> Set<String> {
        var missing = Set<String>()
        try transaction { () throws(SQLiteError) in
            for version in versions
            where try connection.scalar("SELECT count(*) FROM policy_documents WHERE version = ?", [.text(version)])
                == 0
            {
                missing.insert(version)
            }
        }
        return missing
    }

    public func write(host: String, documents: [PolicyDocumentRecord], history: [PolicyHistoryEntry]) throws(AuditError)
    {
        try transaction { () throws(SQLiteError) in
            for document in documents {
                try connection.query(
                    "INSERT OR IGNORE INTO policy_documents (version, name, document) VALUES (?, ?, ?)",
                    [.text(document.version), document.name.map { .text($0) } ?? .null, .text(document.document)])
            }
            for entry in history {
                try connection.query(
                    """
                    INSERT OR IGNORE INTO policy_applications (host, id, version, applied_ns, applied_by, principal, channel, rollout_id,
                                                              idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(host), .integer(entry.id), .text(entry.version), .unsigned(entry.appliedNs),
                        .text(entry.appliedBy),
                        entry.principal.map(SQLValue.text) ?? .null, entry.channel.map(SQLValue.text) ?? .null,
                        entry.rolloutId.map(SQLValue.text) ?? .null, entry.idempotencyKey.map(SQLValue.text) ?? .null,
                    ])
            }
        }
    }

    public func requestCursor(host: String) throws(AuditError) -> Int64 {
        var cursor: Int64 = 0
        try transaction { () throws(SQLiteError) in
            cursor = try connection.scalar("SELECT after_request_id FROM hosts WHERE host = ?", [.text(host)]) ?? 0
        }
        return cursor
    }

    public func write(host: String, requests: [APIRequestRecord], after: Int64, head: StoredChainHead?)
        throws(AuditError)
    {
        try transaction { () throws(SQLiteError) in
            for request in requests {
                try connection.query(
                    """
                    INSERT OR IGNORE INTO api_requests (host, id, time_ns, method, path, status, duration_ns, client, chain)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(host), .integer(request.id), .unsigned(request.timeNs), .text(request.method),
                        .text(request.path),
                        .integer(Int64(request.status)), .unsigned(request.durationNs),
                        request.client.map { .text($0) } ?? .null,
                        request.chain.map(SQLValue.text) ?? .null,
                    ])
            }
            try connection.query(
                "UPDATE hosts SET after_request_id = max(after_request_id, ?) WHERE host = ?",
                [.integer(after), .text(host)])
            if let head {
                try connection.query(
                    "UPDATE hosts SET request_chain_id = ?, request_chain = ? WHERE host = ?",
                    [.integer(head.id), .text(head.chain), .text(host)])
            }
        }
    }
}
