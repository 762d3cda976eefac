import APITypes
import EventStore
import Foundation
import HTTPServer
import Pictures
import Platform

/// `GET /`, `POST /login` and `POST /logout`: the HTML status page and its browser
/// sessions. Signing in trades a token for a random session id (`SessionStore`) in
/// an `HttpOnly`, `SameSite=Strict` cookie (`Secure` with `--cookie-secure`); the
/// session reads the whole read-only API of this agent and never changes anything.
extension AgentAPI {
    static let sessionCookie = "memgate_session"

    /// Who asks for the page: the Unix socket's peer, a bearer token, or a session.
    func pagePrincipal(_ request: HTTPRequest, context: RequestContext) -> Principal? {
        if case .unix(let uid) = context.transport {
            return Principal(name: "unix uid \(uid.map(String.init) ?? "unknown")", role: .admin)
        }
        if let bearer = tokens.authenticate(request.header("Authorization")) { return bearer }
        return sessionPrincipal(request)
    }

    /// The principal of the session the request's cookie names, while it lasts.
    func sessionPrincipal(_ request: HTTPRequest) -> Principal? {
        guard let id = Self.cookieValue(Self.sessionCookie, in: request.header("Cookie")) else { return nil }
        let now = Self.now()
        guard var principal = sessions.withLock({ $0.principal(for: id, nowNanos: now) }) else { return nil }
        principal.viaSession = true
        return principal
    }

    /// Where the server answers (`http://127.0.0.1:8620`, `unix:///run/memgate.sock`), known once it is bound.
    public func announce(endpoints: [String]) {
        self.endpoints.withLock { $0 = endpoints }
    }

    /// The newest events of every kind (oldest first) and the id the page's stream starts after:
    /// the last one shown, so no event falls between the page and its stream.
    func recentEvents(_ count: Int64) -> (events: [EventEntry], after: Int64)? {
        guard let queries, let head = try? queries.streamHead() else { return nil }
        let from = max(head - count, 0)
        let events = ((try? queries.streamEvents(after: from, limit: Int(count))) ?? []).compactMap {
            try? APIJSON.decoder().decode(EventEntry.self, from: Data($0.json))
        }
        return (events, events.last?.eventId ?? from)
    }

    func statusPage(_ request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        guard pagePrincipal(request, context: context) != nil else { return Self.loginPage(status: 401, message: nil) }
        let drawnAt = Self.utcNow()
        let vms = host.vms.map { vm in
            StatusPage.VM(
                info: VMView.info(vm),
                memorySVG: MemoryMapSVG().render(VMView.memory(vm), name: vm.name, drawnAt: drawnAt))
        }
        let conversions = (try? queries?.latestConversions(limit: 10)) ?? nil
        let denials = (try? queries?.latestConversions(limit: 10, decision: "denied")) ?? nil
        let applied = ((try? queries?.policyHistory(limit: 1)) ?? nil)?.first
        var input = StatusPage.Input(
            host: snapshot.info(vms: vmCounts(), policy: host.policies.policy), vms: vms,
            conversions: conversions ?? [], denials: denials ?? [], policyApplied: applied, drawnAt: drawnAt)
        input.live = streams != nil
        input.endpoints = endpoints.withLock { $0 }
        input.nowNanos = MonotonicClock.wallNanos()
        if input.live, let recent = recentEvents(20) {
            input.recentEvents = recent.events
            input.streamAfter = recent.after
        }
        return HTTPResponse(
            status: 200, contentType: "text/html; charset=utf-8", body: Array(StatusPage.html(input).utf8),
            headers: [("Cache-Control", "no-store")])
    }

    func login(token: String?, context: RequestContext) -> HTTPResponse {
        guard let token else { return Self.loginPage(status: 200, message: nil) }
        let peer = context.transport.peerAddress
        let now = Self.now()
        if case .refuse(let wait) = signInThrottle.withLock({ $0.verdict(address: peer, nowNanos: now) }) {
            var page = Self.loginPage(
                status: 429, message: "Too many failed sign-ins from \(peer); try again in \(wait) s.")
            page.headers.append(("Retry-After", "\(wait)"))
            return page
        }
        guard let principal = tokens.authenticate("Bearer " + token) else {
            signInThrottle.withLock { $0.failed(address: peer, nowNanos: now) }
            return Self.loginPage(status: 401, message: "That token is not valid for this agent.")
        }
        let id = sessions.withLock { $0.create(for: principal, nowNanos: now) }
        return HTTPResponse(
            status: 200, contentType: "text/html; charset=utf-8", body: Array(StatusPage.signedIn().utf8),
            headers: [
                ("Set-Cookie", sessionCookie(id, maxAge: configuration.sessionLifetimeNanos / 1_000_000_000)),
                ("Cache-Control", "no-store"),
            ])
    }

    func logout(_ request: HTTPRequest) -> HTTPResponse {
        if let id = Self.cookieValue(Self.sessionCookie, in: request.header("Cookie")) {
            _ = sessions.withLock { $0.revoke(id) }
        }
        return HTTPResponse(
            status: 200, contentType: "text/html; charset=utf-8",
            body: Array(StatusPage.login(message: "Signed out.").utf8),
            headers: [("Set-Cookie", sessionCookie("", maxAge: 0)), ("Cache-Control", "no-store")])
    }

    func sessionCookie(_ id: String, maxAge: UInt64) -> String {
        "\(Self.sessionCookie)=\(id); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict"
            + (configuration.secureCookie ? "; Secure" : "")
    }

    static func loginPage(status: Int, message: String?) -> HTTPResponse {
        HTTPResponse(
            status: status, contentType: "text/html; charset=utf-8",
            body: Array(StatusPage.login(message: message).utf8),
            headers: [("Cache-Control", "no-store")])
    }

    /// The value of cookie `name` in a `Cookie` header. Pure.
    static func cookieValue(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }
}
