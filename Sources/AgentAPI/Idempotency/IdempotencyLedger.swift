import HTTPServer
import MemoryModel

/// The first answer to each Idempotency-Key (IETF httpapi draft "The Idempotency-Key HTTP
/// Header Field", as Stripe does it), per principal: a repeat of the same request gets that
/// answer again, a different request under the same key is refused, and a repeat while the
/// first is still being answered is told to wait. Keys are kept `lifetimeNanos` (24 h) and
/// at most `capacity` (10,000) of them, the oldest going first. Pure.
struct IdempotencyLedger {
    struct Answer: Sendable, Equatable {
        var status: Int
        var headers: [String]
        var body: [UInt8]

        init(_ response: HTTPResponse) {
            status = response.status
            headers = response.headers.map { "\($0.name): \($0.value)" }
            body = response.body
        }

        init(status: Int, headers: [String], body: [UInt8]) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// The stored answer, marked as a replay.
        var response: HTTPResponse {
            let pairs = headers.compactMap { line -> (name: String, value: String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " }))
            }
            return HTTPResponse(status: status, headers: pairs + [("Idempotent-Replayed", "true")], body: body)
        }
    }

    enum Decision: Equatable {
        case proceed
        case replay(Answer)
        case inProgress
        case mismatch
    }

    struct Stored: Sendable, Equatable {
        var principal: String
        var key: String
        var fingerprint: String
        var answer: Answer
        var createdNanos: UInt64
    }

    static let lifetimeNanos: UInt64 = 24 * 3_600 * 1_000_000_000
    static let capacity = 10_000

    private enum Entry {
        case inProgress(fingerprint: String)
        case done(fingerprint: String, answer: Answer, createdNanos: UInt64)
    }

    private var entries: [String: Entry] = [:]
    /// Finished keys, oldest first (scope strings; stale ones are skipped when their entry changed).
    private var order: [(scope: String, createdNanos: UInt64)] = []
    private var head = 0

    init(_ stored: [Stored] = []) {
        for item in stored.sorted(by: { $0.createdNanos < $1.createdNanos }) {
            let scope = Self.scope(item.principal, item.key)
            entries[scope] = .done(fingerprint: item.fingerprint, answer: item.answer, createdNanos: item.createdNanos)
            order.append((scope, item.createdNanos))
        }
        evict(now: stored.map(\.createdNanos).max() ?? 0)
    }

    static func scope(_ principal: String, _ key: String) -> String { principal + "\u{0}" + key }

    /// What a request with `key` from `principal` should get; `.proceed` marks the key in progress.
    mutating func begin(principal: String, key: String, fingerprint: String, now: UInt64) -> Decision {
        evict(now: now)
        let scope = Self.scope(principal, key)
        switch entries[scope] {
        case nil:
            entries[scope] = .inProgress(fingerprint: fingerprint)
            return .proceed
        case .inProgress:
            return .inProgress
        case .done(let stored, let answer, _):
            return stored == fingerprint ? .replay(answer) : .mismatch
        }
    }

    /// The first answer (nil: none to keep, e.g. a 5xx the client should retry for real).
    mutating func finish(principal: String, key: String, fingerprint: String, answer: Answer?, now: UInt64) {
        let scope = Self.scope(principal, key)
        guard let answer else {
            entries[scope] = nil
            return
        }
        entries[scope] = .done(fingerprint: fingerprint, answer: answer, createdNanos: now)
        order.append((scope, now))
        evict(now: now)
    }

    var count: Int { entries.count }

    private mutating func evict(now: UInt64) {
        while head < order.count {
            let (scope, created) = order[head]
            let expired = now >= created && now - created > Self.lifetimeNanos
            guard expired || order.count - head > Self.capacity else { break }
            if case .done(_, _, let stamp)? = entries[scope], stamp == created { entries[scope] = nil }
            head += 1
        }
        // Compact once the dead prefix is the larger part.
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// A key is 1-255 printable ASCII characters (a structured-field string's alphabet).
    static func isValid(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    /// What makes two requests "the same": method, target and body.
    static func fingerprint(method: String, target: String, body: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(Array("\(method) \(target)\n".utf8))
        hasher.update(body)
        return SHA256.hexString(hasher.finalize())
    }
}
