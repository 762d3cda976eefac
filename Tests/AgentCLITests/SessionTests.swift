import Foundation
import HTTPServer
import TestSupport
import Testing

/// Status-page sessions as a browser uses them: a random id in the cookie (never the
/// token), the whole read-only API, no write, signed out by logout and by a token
/// leaving the file, and failed sign-ins throttled per address.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct SessionTests {
    func signIn(_ agent: AgentProcess, _ token: String) throws -> BlockingHTTPClient.Response {
        let client = try BlockingHTTPClient(port: agent.port)
        return try client.request(
            "POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
            body: Array("token=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")".utf8))
    }

    func cookie(_ response: BlockingHTTPClient.Response) throws -> String {
        String(try #require(response.headers["set-cookie"]).prefix { $0 != ";" })
    }

    @Test func aSessionReadsTheWholeAPIButNeverWrites() throws {
        let agent = try AgentProcess(extraArguments: ["--cookie-secure", "--session-ttl", "600"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let signedIn = try signIn(agent, AgentProcess.adminToken)
        let header = try #require(signedIn.headers["set-cookie"])
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=600", "Path=/"] {
            #expect(header.contains(attribute), "\(header)")
        }
        let session = try cookie(signedIn)
        let id = String(session.drop { $0 != "=" }.dropFirst())
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))
        #expect(
            !header.contains(AgentProcess.adminToken)
                && !header.lowercased().contains(
                    Array(AgentProcess.adminToken.utf8).map { String($0, radix: 16) }.joined())
        )
        #expect(try cookie(try signIn(agent, AgentProcess.adminToken)) != session, "every sign-in gets its own id")

        for path in ["/v1/vms", "/v1/host", "/v1/policy", "/v1/policy/history", "/v1/conversions", "/v1/events", "/"] {
            #expect(try agent.request("GET", path, token: "", headers: ["Cookie": session]).status == 200, "\(path)")
        }
        // Signed in with an admin token, and still: a cookie never changes anything.
        let create = try agent.request(
            "POST", "/v1/vms", token: "", json: #"{"name":"x","image":"spin-io.elf","start":false}"#,
            headers: ["Cookie": session])
        #expect(create.status == 403 && create.text.contains("browser session"), "\(create.text)")
        let policy = try agent.request("GET", "/v1/policy", token: "", headers: ["Cookie": session])
        let put = try agent.request(
            "PUT", "/v1/policy", token: "", json: "{}",
            headers: ["Cookie": session, "If-Match": policy.headers["etag"] ?? ""])
        #expect(put.status == 403)
        let vms = AgentProcess.object(try agent.request("GET", "/v1/vms"))["vms"] as? [Any]
        #expect(vms?.isEmpty == true, "the refused create made no VM")

        // Logout ends that session (and only that one's cookie is cleared).
        let client = try BlockingHTTPClient(port: agent.port)
        let out = try client.request("POST", "/logout", headers: ["Cookie": session])
        #expect(out.status == 200 && out.headers["set-cookie"]?.contains("Max-Age=0") == true)
        #expect(try agent.request("GET", "/v1/vms", token: "", headers: ["Cookie": session]).status == 401)
        #expect(
            try agent.request(
                "GET", "/v1/vms", token: "", headers: ["Cookie": "memgate_session=\(String(repeating: "0", count: 64))"]
            ).status == 401)
    }

    @Test func removingATokenFromTheFileEndsItsSessionsOnReload() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let viewer = try cookie(try signIn(agent, AgentProcess.readOnlyToken))
        let admin = try cookie(try signIn(agent, AgentProcess.adminToken))
        #expect(try agent.request("GET", "/v1/vms", token: "", headers: ["Cookie": viewer]).status == 200)
        let tokens = agent.directory.appendingPathComponent("tokens")
        try Data("admin admin \(AgentProcess.adminToken)\n".utf8).write(to: tokens)
        kill(agent.pid, SIGHUP)
        // The reload happens on the agent's signal thread; its effect is what is checked.
        var status = 200
        for _ in 0..<3000 where status == 200 {
            status = try agent.request("GET", "/v1/vms", token: "", headers: ["Cookie": viewer]).status
            if status == 200 { usleep(10_000) }
        }
        #expect(status == 401, "the viewer's session outlived its token")
        #expect(try agent.request("GET", "/v1/vms", token: AgentProcess.readOnlyToken).status == 401)
        #expect(try agent.request("GET", "/v1/vms", token: "", headers: ["Cookie": admin]).status == 200)
        #expect(agent.isRunning)
    }

    @Test func failedSignInsAreThrottledPerAddress() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        // 10 failures throttle the network; then this address has 3 of its own before it must wait.
        for attempt in 1...13 {
            #expect(try signIn(agent, "wrong-\(attempt)").status == 401)
        }
        let throttled = try signIn(agent, AgentProcess.adminToken)
        #expect(throttled.status == 429, "even a valid token waits once the address failed too often")
        let wait = Int(throttled.headers["retry-after"] ?? "") ?? 0
        #expect((1...60).contains(wait))
        // Bearer requests are not sign-ins: they still work.
        #expect(try agent.request("GET", "/v1/vms").status == 200)
    }
}
