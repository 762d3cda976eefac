import SQLite

/// The first answer to an Idempotency-Key, kept so an agent restarted within the key's lifetime still replays it.
public struct IdempotentAnswer: Sendable, Equatable {
    public var principal: String
    public var key: String
    public var method: String
    public var path: String
    /// SHA-256 of method, target and body: what makes a repeat "the same request".
    public var fingerprint: String
    public var status: Int
    /// "Name: value" lines.
    public var headers: [String]
    public var body: [UInt8]
    public var createdNanos: UInt64

    public init(
        principal: String, key: String, method: String, path: String, fingerprint: String, status: Int,
        headers: [String],
        body: [UInt8], createdNanos: UInt64
    ) {
        self.principal = principal
        self.key = key
        self.method = method
        self.path = path
        self.fingerprint = fingerprint
        self.status = status
        self.headers = headers
        self.body = body
        self.createdNanos = createdNanos
    }
}

extension EventStore {
    /// Keeps `answer` (asynchronously, with the next commit), forgetting answers older than `keepSince`.
    public func recordIdempotent(_ answer: IdempotentAnswer, keepSince: UInt64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql: """
                            INSERT OR REPLACE INTO idempotency_keys (principal, key, method, path, request_hash, status, headers, response, created_ns)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        values: [
                            .text(answer.principal), .text(answer.key), .text(answer.method), .text(answer.path),
                            .text(answer.fingerprint),
                            .integer(Int64(answer.status)), .text(answer.headers.joined(separator: "\n")),
                            .text(String(decoding: answer.body, as: UTF8.self)), .unsigned(answer.createdNanos),
                        ]),
                    EventWriter.Write(
                        sql: "DELETE FROM idempotency_keys WHERE created_ns < ?", values: [.unsigned(keepSince)]),
                ]
            )
        }
    }
}

extension EventQueries {
    /// The newest `limit` answers kept since `since`.
    public func idempotentAnswers(since: UInt64, limit: Int) throws(EventStoreError) -> [IdempotentAnswer] {
        try withConnection { connection throws(SQLiteError) in
            try connection.query(
                """
                SELECT principal, key, method, path, request_hash, status, headers, response, created_ns FROM idempotency_keys
                WHERE created_ns >= ? ORDER BY created_ns DESC LIMIT ?
                """, [.unsigned(since), .integer(Int64(limit))]
            ).map { row in
                IdempotentAnswer(
                    principal: row[0].text, key: row[1].text, method: row[2].text, path: row[3].text,
                    fingerprint: row[4].text,
                    status: Int(row[5].integer),
                    headers: row[6].text.isEmpty ? [] : row[6].text.split(separator: "\n").map(String.init),
                    body: Array(row[7].text.utf8), createdNanos: row[8].unsigned)
            }
        }
    }
}
