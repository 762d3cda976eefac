import EventStore
import HTTPServer
import Platform

/// Writes that honour `Idempotency-Key`: the first answer to a key is kept (not a 5xx) and a repeat of
/// the same request gets it again, marked `Idempotent-Replayed: true`.
extension AgentAPI {
    func performOnce(_ action: AgentAction, request: HTTPRequest, principal: Principal?, context: RequestContext)
        throws(APIError) -> HTTPResponse
    {
        guard action.isMutating, let key = request.header("Idempotency-Key") else {
            return try perform(action, request: request, principal: principal, context: context)
        }
        guard IdempotencyLedger.isValid(key) else {
            throw APIError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")
        }
        let scope = Self.client(principal, context)
        let fingerprint = IdempotencyLedger.fingerprint(
            method: request.method.rawValue, target: request.target, body: request.body)
        let decision = idempotency.withLock {
            $0.begin(principal: scope, key: key, fingerprint: fingerprint, now: MonotonicClock.wallNanos())
        }
        switch decision {
        case .replay(let answer):
            return answer.response
        case .inProgress:
            throw APIError(
                409, "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being answered; retry it in a moment",
                headers: ["Retry-After": "1"])
        case .mismatch:
            throw APIError(
                422, "idempotency_key_reused",
                """
                this Idempotency-Key was first used for a different request (method, path or body); send a new key for a new request
                """)
        case .proceed:
            break
        }
        var response: HTTPResponse
        do throws(APIError) {
            response = try perform(action, request: request, principal: principal, context: context)
        } catch {
            response = error.response
        }
        let now = MonotonicClock.wallNanos()
        // A server error is not an answer to keep: the client's retry should be tried for real.
        let kept = response.status < 500 ? IdempotencyLedger.Answer(response) : nil
        idempotency.withLock { $0.finish(principal: scope, key: key, fingerprint: fingerprint, answer: kept, now: now) }
        if let kept {
            host.store?.recordIdempotent(
                IdempotentAnswer(
                    principal: scope, key: key, method: request.method.rawValue, path: String(request.path),
                    fingerprint: fingerprint,
                    status: kept.status, headers: kept.headers, body: kept.body, createdNanos: now),
                keepSince: now > IdempotencyLedger.lifetimeNanos ? now - IdempotencyLedger.lifetimeNanos : 0)
        }
        return response
    }
}
