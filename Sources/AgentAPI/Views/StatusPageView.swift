import APITypes
import EventStore
import Foundation
import HTTPServer
import Pictures

/// `GET /` and `POST /login`: the HTML status page, and the cookie that lets a
/// browser on TCP see it. The cookie carries the token (hex, `HttpOnly`,
/// `SameSite=Strict`), so any token the agent accepts, read-only included, works.
extension AgentAPI {
    static let sessionCookie = "memgate_session"

    /// Who asks for the page: the Unix socket's peer, a bearer token, or the session cookie.
    func pagePrincipal(_ request: HTTPRequest, context: RequestContext) -> Principal? {
        if case .unix(let uid) = context.transport {
            return Principal(name: "unix uid \(uid.map(String.init) ?? "unknown")", role: .admin)
        }
        if let bearer = configuration.tokens.authenticate(request.header("Authorization")) { return bearer }
        guard let secret = Self.cookieValue(Self.sessionCookie, in: request.header("Cookie")).flatMap(Self.unhex) else { return nil }
        return configuration.tokens.authenticate("Bearer " + secret)
    }

    func statusPage(_ request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        guard pagePrincipal(request, context: context) != nil else { return Self.loginPage(status: 401, message: nil) }
        let drawnAt = Self.utcNow()
        let vms = host.vms.map { vm in
            StatusPage.VM(info: VMView.info(vm), memorySVG: MemoryMapSVG().render(VMView.memory(vm), name: vm.name, drawnAt: drawnAt))
        }
        let conversions = (try? queries?.latestConversions(limit: 10)) ?? nil
        let denials = (try? queries?.latestConversions(limit: 10, decision: "denied")) ?? nil
        let applied = ((try? queries?.policyHistory(limit: 1)) ?? nil)?.first
        let input = StatusPage.Input(host: snapshot.info(vms: vmCounts(), policyVersion: host.policies.policy.version), vms: vms,
                                     conversions: conversions ?? [], denials: denials ?? [], policyApplied: applied, drawnAt: drawnAt)
        return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(StatusPage.html(input).utf8),
                            headers: [("Cache-Control", "no-store")])
    }

    func login(token: String?) -> HTTPResponse {
        guard let token else { return Self.loginPage(status: 200, message: nil) }
        guard configuration.tokens.authenticate("Bearer " + token) != nil else {
            return Self.loginPage(status: 401, message: "That token is not valid for this agent.")
        }
        let cookie = "\(Self.sessionCookie)=\(Self.hex(token)); Path=/; HttpOnly; SameSite=Strict"
        return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(StatusPage.signedIn().utf8),
                            headers: [("Set-Cookie", cookie), ("Cache-Control", "no-store")])
    }

    static func loginPage(status: Int, message: String?) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/html; charset=utf-8", body: Array(StatusPage.login(message: message).utf8),
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

    static func hex(_ text: String) -> String {
        text.utf8.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    static func unhex(_ text: String) -> String? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, digits.count <= 1024 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
            index += 2
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
