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
        CREATE OR REPLACE VIEW fleet_policy_changes AS
            SELECT a.host, a.applied_ns, a.applied_by, a.version, d.name, d.document
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
        try execute("INSERT INTO hosts (host, url) VALUES (\(h), \(u)) ON CONFLICT (host) DO UPDATE SET url = excluded.url")
        return Int64(try execute("SELECT after_event_id FROM hosts WHERE host = \(h)").first ?? "0") ?? 0
    }

    public func write(host: String, events: [EventEntry], after: Int64, atNanos: UInt64) throws(AuditError) {
        let h = try Self.literal(host)
        var faults: [String] = []
        var conversions: [String] = []
        for event in events {
            if let f = event.memoryFault {
                faults.append("(\(h), \(f.eventId), \(f.vmId), \(f.vcpu), \(Self.integer(f.timeNs)), \(Self.integer(f.gpa)), "
                              + "\(Self.integer(f.size)), \(Self.integer(f.flags)), \(try Self.literal(f.source)), "
                              + "\(try f.knownAccess.map(Self.literal) ?? "NULL"))")
            }
            if let c = event.conversion {
                conversions.append("(\(h), \(c.eventId), \(c.vmId), \(c.vcpu), \(Self.integer(c.requestedNs)), \(Self.integer(c.completedNs)), "
                                   + "\(Self.integer(c.gpa)), \(Self.integer(c.size)), \(try Self.literal(c.direction)), \(try Self.literal(c.trigger)), "
                                   + "\(try Self.literal(c.decision)), \(try Self.literal(c.reason)), \(try Self.literal(c.policyVersion)), "
                                   + "\(try Self.literal(c.source)), \(Self.integer(c.changedBytes)), \(Self.integer(c.discardedBytes)), \(c.guestResult))")
            }
        }
        var sql = "BEGIN;"
        if !faults.isEmpty {
            sql += "INSERT INTO memory_faults (host, event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access) VALUES "
                + faults.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        if !conversions.isEmpty {
            sql += "INSERT INTO conversions (host, event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, "
                + "decision, reason, policy_version, source, changed_bytes, discarded_bytes, guest_result) VALUES "
                + conversions.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        sql += "UPDATE hosts SET after_event_id = greatest(after_event_id, \(after)), last_pull_ns = \(Self.integer(atNanos)) WHERE host = \(h);"
        sql += "COMMIT"
        try execute(sql)
    }

    public func write(host: String, vms: [VMInfo]) throws(AuditError) {
        guard !vms.isEmpty else { return }
        let h = try Self.literal(host)
        var rows: [String] = []
        for vm in vms {
            let labels = (try? JSONSerialization.data(withJSONObject: vm.labels, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            rows.append("(\(h), \(vm.id), \(try Self.literal(vm.name)), \(try Self.literal(labels)), \(Self.integer(vm.memoryMib)), \(vm.vcpus), "
                        + "\(try Self.literal(vm.backend)), \(try Self.literal(vm.initialState)), \(try Self.literal(vm.state)), "
                        + "\(try vm.reason.map(Self.literal) ?? "NULL"), \(Self.integer(vm.createdNs)), \(Self.integer(vm.endedNs)))")
        }
        try execute("INSERT INTO vms (host, vm_id, name, labels, memory_mib, vcpus, backend, initial_state, state, reason, created_ns, ended_ns) "
                    + "VALUES \(rows.joined(separator: ",")) ON CONFLICT (host, vm_id) DO UPDATE SET state = excluded.state, "
                    + "reason = excluded.reason, ended_ns = excluded.ended_ns, name = excluded.name, labels = excluded.labels")
    }

    public func missingDocuments(_ versions: Set<String>) throws(AuditError) -> Set<String> {
        guard !versions.isEmpty else { return [] }
        let list = try versions.sorted().map { version throws(AuditError) in try Self.literal(version) }.joined(separator: ",")
        let stored = Set(try execute("SELECT version FROM policy_documents WHERE version IN (\(list))"))
        return versions.subtracting(stored)
    }

    public func write(host: String, documents: [PolicyDocumentRecord], history: [PolicyHistoryEntry]) throws(AuditError) {
        let h = try Self.literal(host)
        var sql = "BEGIN;"
        for document in documents {
            sql += "INSERT INTO policy_documents (version, name, document) VALUES (\(try Self.literal(document.version)), "
                + "\(try document.name.map(Self.literal) ?? "NULL"), \(try Self.literal(document.document))) ON CONFLICT DO NOTHING;"
        }
        for entry in history {
            sql += "INSERT INTO policy_applications (host, id, version, applied_ns, applied_by) VALUES (\(h), \(entry.id), "
                + "\(try Self.literal(entry.version)), \(Self.integer(entry.appliedNs)), \(try Self.literal(entry.appliedBy))) ON CONFLICT DO NOTHING;"
        }
        try execute(sql + "COMMIT")
    }

    public func requestCursor(host: String) throws(AuditError) -> Int64 {
        Int64(try execute("SELECT after_request_id FROM hosts WHERE host = \(try Self.literal(host))").first ?? "0") ?? 0
    }

    public func write(host: String, requests: [APIRequestRecord], after: Int64) throws(AuditError) {
        let h = try Self.literal(host)
        var sql = "BEGIN;"
        if !requests.isEmpty {
            let rows = try requests.map { r throws(AuditError) in
                "(\(h), \(r.id), \(Self.integer(r.timeNs)), \(try Self.literal(r.method)), \(try Self.literal(r.path)), \(r.status), "
                    + "\(Self.integer(r.durationNs)), \(try r.client.map(Self.literal) ?? "NULL"))"
            }
            sql += "INSERT INTO api_requests (host, id, time_ns, method, path, status, duration_ns, client) VALUES "
                + rows.joined(separator: ",") + " ON CONFLICT DO NOTHING;"
        }
        try execute(sql + "UPDATE hosts SET after_request_id = greatest(after_request_id, \(after)) WHERE host = \(h); COMMIT")
    }
}
