import APITypes
import CPQ
import Foundation

/// The fleet audit database in PostgreSQL, for fleets whose audit outgrows one file.
/// The same tables as the SQLite form; each page and its cursor in one transaction.
/// Values are sent as SQL literals: integers as such, text quoted with '' escaping
/// under `standard_conforming_strings` (set on connect), NUL bytes refused.
public final class PostgresAuditSink: AuditSink {
    private let connection: OpaquePointer

    static let schema = """
        CREATE TABLE IF NOT EXISTS hosts (host TEXT PRIMARY KEY, url TEXT NOT NULL, after_event_id BIGINT NOT NULL DEFAULT 0,
                                          last_pull_ns BIGINT);
        CREATE TABLE IF NOT EXISTS vms (host TEXT NOT NULL REFERENCES hosts (host), vm_id BIGINT NOT NULL, name TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}', memory_mib BIGINT NOT NULL, vcpus INTEGER NOT NULL, backend TEXT NOT NULL,
            initial_state TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, created_ns BIGINT NOT NULL, ended_ns BIGINT,
            PRIMARY KEY (host, vm_id));
        CREATE TABLE IF NOT EXISTS memory_faults (host TEXT NOT NULL REFERENCES hosts (host), event_id BIGINT NOT NULL,
            vm_id BIGINT NOT NULL, vcpu INTEGER NOT NULL, time_ns BIGINT NOT NULL, gpa BIGINT NOT NULL, size BIGINT NOT NULL,
            flags BIGINT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (host, event_id));
        CREATE TABLE IF NOT EXISTS conversions (host TEXT NOT NULL REFERENCES hosts (host), event_id BIGINT NOT NULL,
            vm_id BIGINT NOT NULL, vcpu INTEGER NOT NULL, requested_ns BIGINT NOT NULL, completed_ns BIGINT, gpa BIGINT NOT NULL,
            size BIGINT NOT NULL, direction TEXT NOT NULL, trigger TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL,
            policy_version TEXT NOT NULL, source TEXT NOT NULL, changed_bytes BIGINT NOT NULL, discarded_bytes BIGINT NOT NULL,
            guest_result BIGINT NOT NULL, PRIMARY KEY (host, event_id));
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS after_request_id BIGINT NOT NULL DEFAULT 0;
        CREATE TABLE IF NOT EXISTS policy_documents (version TEXT PRIMARY KEY, name TEXT, document TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS policy_applications (host TEXT NOT NULL REFERENCES hosts (host), id BIGINT NOT NULL,
            version TEXT NOT NULL REFERENCES policy_documents (version), applied_ns BIGINT NOT NULL, applied_by TEXT NOT NULL,
            PRIMARY KEY (host, id));
        CREATE TABLE IF NOT EXISTS api_requests (host TEXT NOT NULL REFERENCES hosts (host), id BIGINT NOT NULL, time_ns BIGINT NOT NULL,
            method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, duration_ns BIGINT NOT NULL, client TEXT,
            PRIMARY KEY (host, id));
        ALTER TABLE memory_faults ADD COLUMN IF NOT EXISTS access TEXT;
        CREATE OR REPLACE VIEW fleet_fault_accesses AS
            SELECT host, vm_id, coalesce(access, 'unknown') AS access, source, count(*) AS faults
            FROM memory_faults GROUP BY host, vm_id, coalesce(access, 'unknown'), source;
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS chain_event_id BIGINT;
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS chain TEXT;
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS request_chain_id BIGINT;
        ALTER TABLE hosts ADD COLUMN IF NOT EXISTS request_chain TEXT;
        ALTER TABLE memory_faults ADD COLUMN IF NOT EXISTS chain TEXT;
        ALTER TABLE conversions ADD COLUMN IF NOT EXISTS chain TEXT;
        ALTER TABLE api_requests ADD COLUMN IF NOT EXISTS chain TEXT;
        CREATE TABLE IF NOT EXISTS vm_events (host TEXT NOT NULL REFERENCES hosts (host), event_id BIGINT NOT NULL, vm_id BIGINT NOT NULL,
            time_ns BIGINT NOT NULL, what TEXT NOT NULL, final_state TEXT, reason TEXT, exit_status BIGINT, chain TEXT,
            PRIMARY KEY (host, event_id));
        ALTER TABLE policy_applications ADD COLUMN IF NOT EXISTS principal TEXT;
        ALTER TABLE policy_applications ADD COLUMN IF NOT EXISTS channel TEXT;
        ALTER TABLE policy_applications ADD COLUMN IF NOT EXISTS rollout_id TEXT;
        ALTER TABLE policy_applications ADD COLUMN IF NOT EXISTS idempotency_key TEXT;
        CREATE TABLE IF NOT EXISTS fleet_chain_breaks (id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL REFERENCES hosts (host),
            chain TEXT NOT NULL, detected_ns BIGINT NOT NULL, row_id BIGINT NOT NULL, after_id BIGINT NOT NULL, expected TEXT,
            found TEXT, reason TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS fleet_chain_cuts (host TEXT NOT NULL REFERENCES hosts (host), chain TEXT NOT NULL,
            from_id BIGINT NOT NULL, through_id BIGINT NOT NULL, pruned BIGINT NOT NULL, detected_ns BIGINT NOT NULL,
            PRIMARY KEY (host, chain, through_id));
        DROP VIEW IF EXISTS fleet_policy_changes;
        CREATE VIEW fleet_policy_changes AS
            SELECT a.host, a.applied_ns, a.applied_by, a.principal, a.channel, a.rollout_id, a.idempotency_key, a.version, d.name, d.document
            FROM policy_applications a JOIN policy_documents d ON d.version = a.version;
        """

    public init(uri: String) throws(AuditError) {
        guard let connection = PQconnectdb(uri) else { throw AuditError("PostgreSQL: out of memory") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(connection)
            throw AuditError("PostgreSQL: cannot connect: \(message)")
        }
        self.connection = connection
        try execute("SET standard_conforming_strings = on; SET client_min_messages = warning")
        try execute("BEGIN; SELECT pg_advisory_xact_lock(7260431); \(Self.schema) COMMIT")
    }

    // Safety: the connection is this object's alone, and no result outlives the query that made it.
    deinit { PQfinish(connection) }

    /// Runs SQL; returns the first column of each row.
    @discardableResult
    private func execute(_ sql: String) throws(AuditError) -> [String] {
        guard let result = PQexec(connection, sql) else { throw AuditError("PostgreSQL: out of memory") }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            _ = PQexec(connection, "ROLLBACK").map { PQclear($0) }
            throw AuditError("PostgreSQL: \(message)")
        }
        // Safety: rows below PQntuples, column 0 of a one-column query; each value is NUL-terminated and read before PQclear.
        return (0..<PQntuples(result)).map { String(cString: PQgetvalue(result, $0, 0)) }
    }

    static func literal(_ text: String) throws(AuditError) -> String {
        guard !text.utf8.contains(0) else { throw AuditError("PostgreSQL: text with a NUL byte cannot be stored") }
        return "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    static func integer(_ value: UInt64?) -> String { value.map { String(Int64(bitPattern: $0)) } ?? "NULL" }
    static func integer(_ value: Int64) -> String { String(value) }

    public func cursor(host: String, url: String) throws(AuditError) -> Int64 {
        let h = try Self.literal(host), u = try Self.literal(url)
        try execute(
            "INSERT INTO hosts (host, url) VALUES (\(h), \(u)) ON CONFLICT (host) DO UPDATE SET url = excluded.url")
        return Int64(try execute("SELECT after_event_id FROM hosts WHERE host = \(h)").first ?? "0") ?? 0
    }

    public func write(host: String, events: [EventEntry], after: Int64, head: StoredChainHead?, atNanos: UInt64)
        throws(AuditError)
    {
        let h = try Self.literal(host)
        var faults: [String] = []
        var conversions: [String] = []
        var lifecycle: [String] = []
        for event in events {
            let chain = try event.chain.map(Self.literal) ?? "NULL"
            if let f = event.memoryFault {
                faults.append(
                    "(\(h), \(f.eventId), \(f.vmId), \(f.vcpu), \(Self.integer(f.timeNs)), \(Self.integer(f.gpa)), "
                        + "\(Self.integer(f.size)), \(Self.integer(f.flags)), \(try Self.literal(f.source)), "
                        + "\(try f.knownAccess.map(Self.literal) ?? "NULL"), \(chain))")
            }
            if let c = event.conversion {
                conversions.append(
                    "(\(h), \(c.eventId), \(c.vmId), \(c.vcpu), \(Self.integer(c.requestedNs)), \(Self.integer(c.completedNs)), "
                        + "\(Self.integer(c.gpa)), \(Self.integer(c.size)), \(try Self.literal(c.direction)), \(try Self.literal(c.trigger)), "
                        + "\(try Self.literal(c.decision)), \(try Self.literal(c.reason)), \(try Self.literal(c.policyVersion)), "
                        + "\(try Self.literal(c.source)), \(Self.integer(c.changedBytes)), \(Self.integer(c.discardedBytes)), \(c.guestResult), "
                        + "\(chain))")
            }
            if let e = event.vmEvent {
                lifecycle.append(
                    "(\(h), \(e.eventId), \(e.vmId), \(Self.integer(e.timeNs)), \(try Self.literal(e.what)), "
                        + "\(try e.finalState.map(Self.literal) ?? "NULL"), \(try e.reason.map(Self.literal) ?? "NULL"), "
                        + "\(e.exitStatus.map(String.init) ?? "NULL"), \(chain))")
            }
        }
        var sql = "BEGIN;"
        if !faults.isEmpty {
            sql +=
                "INSERT INTO memory_faults (host, event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access, chain) VALUES "
                + faults.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        if !conversions.isEmpty {
            sql +=
                "INSERT INTO conversions (host, event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, "
                + "decision, reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, chain) VALUES "
                + conversions.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        if !lifecycle.isEmpty {
            sql +=
                "INSERT INTO vm_events (host, event_id, vm_id, time_ns, what, final_state, reason, exit_status, chain) VALUES "
                + lifecycle.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        sql +=
            "UPDATE hosts SET after_event_id = greatest(after_event_id, \(after)), last_pull_ns = \(Self.integer(atNanos)) WHERE host = \(h);"
        if let head {
            sql +=
                "UPDATE hosts SET chain_event_id = \(head.id), chain = \(try Self.literal(head.chain)) WHERE host = \(h);"
        }
        sql += "COMMIT"
        try execute(sql)
    }

    public func chainHead(host: String, chain: String) throws(AuditError) -> StoredChainHead? {
        let columns =
            chain == "requests" ? "request_chain_id || ' ' || request_chain" : "chain_event_id || ' ' || chain"
        guard let text = try execute("SELECT \(columns) FROM hosts WHERE host = \(try Self.literal(host))").first else {
            return nil
        }
        let parts = text.split(separator: " ")
        guard parts.count == 2, let id = Int64(parts[0]) else { return nil }
        return StoredChainHead(id: id, chain: String(parts[1]))
    }

    public func record(host: String, break found: ChainBreak, atNanos: UInt64) throws(AuditError) {
        try execute(
            """
            INSERT INTO fleet_chain_breaks (host, chain, detected_ns, row_id, after_id, expected, found, reason) VALUES (\(try Self.literal(host)), \
            \(try Self.literal(found.chain)), \(Self.integer(atNanos)), \(found.id), \(found.afterID), \(try found.expected.map(Self.literal) ?? "NULL"), \
            \(try found.found.map(Self.literal) ?? "NULL"), \(try Self.literal(found.reason)))
            """)
    }

    public func recordCut(host: String, chain: String, from: Int64, through: Int64, pruned: Int64, atNanos: UInt64)
        throws(AuditError)
    {
        try execute(
            """
            INSERT INTO fleet_chain_cuts (host, chain, from_id, through_id, pruned, detected_ns) VALUES (\(try Self.literal(host)), \
            \(try Self.literal(chain)), \(from), \(through), \(pruned), \(Self.integer(atNanos))) ON CONFLICT DO NOTHING
            """)
    }

    public func write(host: String, vms: [VMInfo]) throws(AuditError) {
        guard !vms.isEmpty else { return }
        let h = try Self.literal(host)
        var rows: [String] = []
        for vm in vms {
            let labels =
                (try? JSONSerialization.data(withJSONObject: vm.labels, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            rows.append(
                "(\(h), \(vm.id), \(try Self.literal(vm.name)), \(try Self.literal(labels)), \(Self.integer(vm.memoryMib)), \(vm.vcpus), "
                    + "\(try Self.literal(vm.backend)), \(try Self.literal(vm.initialState)), \(try Self.literal(vm.state)), "
                    + "\(try vm.reason.map(Self.literal) ?? "NULL"), \(Self.integer(vm.createdNs)), \(Self.integer(vm.endedNs)))"
            )
        }
        try execute(
            "INSERT INTO vms (host, vm_id, name, labels, memory_mib, vcpus, backend, initial_state, state, reason, created_ns, ended_ns) "
                + "VALUES \(rows.joined(separator: ",")) ON CONFLICT (host, vm_id) DO UPDATE SET state = excluded.state, "
                + "reason = excluded.reason, ended_ns = excluded.ended_ns, name = excluded.name, labels = excluded.labels"
        )
    }

    public func missingDocuments(_ versions: Set<String>) throws(AuditError) -> Set<String> {
        guard !versions.isEmpty else { return [] }
        let list = try versions.sorted().map { version throws(AuditError) in try Self.literal(version) }.joined(
            separator: ",")
        let stored = Set(try execute("SELECT version FROM policy_documents WHERE version IN (\(list))"))
        return versions.subtracting(stored)
    }

    public func write(host: String, documents: [PolicyDocumentRecord], history: [PolicyHistoryEntry]) throws(AuditError)
    {
        let h = try Self.literal(host)
        var sql = "BEGIN;"
        for document in documents {
            sql +=
                "INSERT INTO policy_documents (version, name, document) VALUES (\(try Self.literal(document.version)), "
                + "\(try document.name.map(Self.literal) ?? "NULL"), \(try Self.literal(document.document))) ON CONFLICT DO NOTHING;"
        }
        for entry in history {
            sql +=
                "INSERT INTO policy_applications (host, id, version, applied_ns, applied_by, principal, channel, rollout_id, idempotency_key) "
                + "VALUES (\(h), \(entry.id), \(try Self.literal(entry.version)), \(Self.integer(entry.appliedNs)), \(try Self.literal(entry.appliedBy)), "
                + "\(try entry.principal.map(Self.literal) ?? "NULL"), \(try entry.channel.map(Self.literal) ?? "NULL"), "
                + "\(try entry.rolloutId.map(Self.literal) ?? "NULL"), \(try entry.idempotencyKey.map(Self.literal) ?? "NULL")) ON CONFLICT DO NOTHING;"
        }
        try execute(sql + "COMMIT")
    }

    public func requestCursor(host: String) throws(AuditError) -> Int64 {
        Int64(try execute("SELECT after_request_id FROM hosts WHERE host = \(try Self.literal(host))").first ?? "0")
            ?? 0
    }

    public func write(host: String, requests: [APIRequestRecord], after: Int64, head: StoredChainHead?)
        throws(AuditError)
    {
        let h = try Self.literal(host)
        var sql = "BEGIN;"
        if !requests.isEmpty {
            let rows = try requests.map { r throws(AuditError) in
                "(\(h), \(r.id), \(Self.integer(r.timeNs)), \(try Self.literal(r.method)), \(try Self.literal(r.path)), \(r.status), "
                    + "\(Self.integer(r.durationNs)), \(try r.client.map(Self.literal) ?? "NULL"), \(try r.chain.map(Self.literal) ?? "NULL"))"
            }
            sql +=
                "INSERT INTO api_requests (host, id, time_ns, method, path, status, duration_ns, client, chain) VALUES "
                + rows.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        if let head {
            sql +=
                "UPDATE hosts SET request_chain_id = \(head.id), request_chain = \(try Self.literal(head.chain)) WHERE host = \(h);"
        }
        try execute(
            sql + "UPDATE hosts SET after_request_id = greatest(after_request_id, \(after)) WHERE host = \(h); COMMIT")
    }
}
