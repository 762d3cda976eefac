import APITypes
import Foundation
import HTTPServer
import TestSupport
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The memory map SVG, the status page with its sign-in, and the page as a real
/// browser draws it.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct PicturesOverHTTPTests {
    /// An agent with two ended VMs: a quarter and a half of data RAM shared (32 MiB: 30 MiB of data RAM).
    func agentWithTwoVMs() throws -> (AgentProcess, [Int: Double]) {
        let agent = try AgentProcess()
        var truth: [Int: Double] = [:]
        for (name, pages, fraction) in [("quarter", "780", 0.25), ("half", "f00", 0.5)] {
            let response = try agent.request(
                "POST", "/v1/vms",
                json: #"{"name":"\#(name)","image":"explicit.elf","memory_mib":32,"command_line":"0:\#(pages):0"}"#)
            #expect(response.status == 201, "\(response.text)")
            let id = AgentProcess.object(response)["id"] as? Int ?? -1
            _ = try agent.waitForEnd(id)
            truth[id] = fraction
        }
        return (agent, truth)
    }

    final class Totals: NSObject, XMLParserDelegate {
        var texts: [String] = []
        var widths = 0
        /// `data-bytes` of each legend total, by its class.
        var exact: [String: Int] = [:]
        var current = ""
        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if name == "rect", attributes["class"] != nil { widths += Int(attributes["width"] ?? "") ?? 0 }
            if name == "text", let kind = attributes["class"], let bytes = attributes["data-bytes"] {
                exact[kind] = Int(bytes)
            }
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(current) }
        }
    }

    @Test func memorySVGMatchesTheJSONExactly() throws {
        let (agent, truth) = try agentWithTwoVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        for id in truth.keys {
            let memory = AgentProcess.object(try agent.request("GET", "/v1/vms/\(id)/memory"))
            let response = try agent.request("GET", "/v1/vms/\(id)/memory.svg")
            #expect(response.status == 200 && response.headers["content-type"] == "image/svg+xml")
            let totals = Totals()
            let parser = XMLParser(data: Data(response.body))
            parser.delegate = totals
            #expect(parser.parse(), "not well-formed: \(String(describing: parser.parserError))")
            #expect(totals.widths == 800)
            let shared = memory["shared_bytes"] as? Int ?? -1, privateBytes = memory["private_bytes"] as? Int ?? -1
            #expect(
                totals.exact["total-shared"] == shared && totals.exact["total-private"] == privateBytes,
                "\(totals.exact)")
            #expect(
                totals.texts.contains { $0.hasPrefix("shared: \(humanBytes(UInt64(shared))) (") }, "\(totals.texts)")
        }
        let id = try #require(truth.keys.first)
        #expect(try agent.request("GET", "/v1/vms/\(id)/memory.svg?from=2097152&to=4194304").status == 200)
        #expect(try agent.request("GET", "/v1/vms/\(id)/memory.svg?from=9&to=3").status == 422)
        #expect(try agent.request("GET", "/v1/vms/\(id)/memory.svg", token: "").status == 401)
        #expect(try agent.request("GET", "/v1/vms/999/memory.svg").status == 404)
    }

    @Test func theStatusPageNeedsASignInOnTCPOnly() throws {
        let (agent, _) = try agentWithTwoVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let anonymous = try agent.request("GET", "/", token: "")
        #expect(anonymous.status == 401 && anonymous.text.contains("<form method=\"post\" action=\"/login\">"))
        func login(_ token: String) throws -> BlockingHTTPClient.Response {
            let client = try BlockingHTTPClient(port: agent.port)
            return try client.request(
                "POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                body: Array("token=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")".utf8))
        }
        #expect(try login("wrong").status == 401)
        let signedIn = try login(AgentProcess.readOnlyToken)
        #expect(signedIn.status == 200)
        let cookie = try #require(signedIn.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        let session = String(cookie.prefix { $0 != ";" })
        let page = try agent.request("GET", "/", token: "", headers: ["Cookie": session])
        #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
        for expected in [
            "quarter", "half", "<svg", "Latest conversions", "Latest denials", "/v1/host", "policy in force",
        ] {
            #expect(page.text.contains(expected), "the page lacks \(expected)")
        }
        // No external resource: nothing is loaded from anywhere but this agent.
        for external in ["src=\"http", "href=\"http", "url(http", "@import"] { #expect(!page.text.contains(external)) }
        // The Unix socket needs no sign-in.
        let local = try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/")
        #expect(local.status == 200 && local.text.contains("quarter"))
    }

    /// Headless Chromium signs in through the form and screenshots the page; along each bar
    /// the private and shared colours split as the VM's memory does (within 2%).
    @Test func aRealBrowserDrawsTheBarsToScale() throws {
        guard let chromium = LiveDriver.chromium() else { return }
        let (agent, truth) = try agentWithTwoVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let form = try LiveDriver.signInForm(agent)
        let shot = agent.directory.appendingPathComponent("status.png")
        // Over the DevTools protocol: the live page keeps its event stream open, which a
        // --virtual-time-budget screenshot would wait for forever.
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/AgentCLITests/Scripts/live_page.py").path
        let browser = try TestSupport.run(
            "/usr/bin/python3", [script, chromium, form.absoluteString, shot.path],
            environment: LiveDriver.environment(agent))
        try #require(
            FileManager.default.fileExists(atPath: shot.path),
            "no screenshot: \(browser.stdout) \(browser.stderr.suffix(500)); chromium: \(LiveDriver.chromiumLogTail(agent))"
        )
        let measure = TestSupport.packageRoot.appendingPathComponent("Tests/AgentCLITests/Scripts/bars.py").path
        let measured = try TestSupport.run("/usr/bin/python3", [measure, shot.path])
        #expect(measured.status == 0, "\(measured.stderr)")
        // The memory maps' bars (28 px high); the history charts' 2 px step lines in the same orange are not bars.
        let bars = measured.stdout.split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
            .filter { $0.count == 4 && $0[1] - $0[0] >= 10 }
        #expect(bars.count == 2, "bars found: \(measured.stdout)")
        // VMs are listed by id: quarter, then half.
        for (bar, id) in zip(bars, truth.keys.sorted()) where bar.count == 4 {
            let fraction = bar[3] / (bar[2] + bar[3])
            let expected = truth[id] ?? -1
            #expect(
                abs(fraction - expected) <= 0.02,
                "VM \(id): shared \(fraction) of the data-RAM pixels, expected \(expected)")
            #expect(bar[1] - bar[0] >= 20, "the bar is \(bar[1] - bar[0] + 1) pixels high")
        }
    }

    /// Headless Chromium on the status page (driven over the DevTools protocol): once the page
    /// follows the event stream, a conversion made after it loaded appears on it without a reload.
    @Test func theStatusPageShowsEventsAsTheyHappen() throws {
        guard let chromium = LiveDriver.chromium() else { return }
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let form = try LiveDriver.signInForm(agent)
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        driver.arguments = [
            TestSupport.packageRoot.appendingPathComponent("Tests/AgentCLITests/Scripts/live_page.py").path, chromium,
            form.absoluteString,
        ]
        driver.environment = LiveDriver.environment(agent).merging(["PATH": "/usr/bin:/bin"]) { _, path in path }
        let input = Pipe(), output = Pipe(), errors = Pipe()
        driver.standardInput = input
        driver.standardOutput = output
        driver.standardError = errors
        try driver.run()
        defer { if driver.isRunning { driver.terminate() } }
        let lines = LineReader(output.fileHandleForReading)
        let ready = lines.next()
        guard ready == "READY" else {
            // Why, in the driver's and Chromium's own words.
            let driverErrors = String(
                decoding: errors.fileHandleForReading.readDataToEndOfFile().suffix(1500), as: UTF8.self)
            Issue.record(
                "the page did not start following the stream: \(ready ?? "nothing"); driver: \(driverErrors); chromium: \(LiveDriver.chromiumLogTail(agent))"
            )
            return
        }

        // Made after the page loaded: a VM that converts memory.
        let response = try agent.request(
            "POST", "/v1/vms", json: #"{"name":"live","image":"churn.elf","command_line":"6","memory_mib":16}"#)
        #expect(response.status == 201, "\(response.text)")
        let vm = AgentProcess.object(response)["id"] as? Int ?? -1
        _ = try agent.waitForEnd(vm)
        let conversions =
            AgentProcess.object(try agent.request("GET", "/v1/conversions?vm=\(vm)"))["items"] as? [[String: Any]] ?? []
        let ids = conversions.compactMap { $0["event_id"] as? Int }
        #expect(ids.count == 6)
        input.fileHandleForWriting.write(Data((ids.map(String.init).joined(separator: ",") + "\n").utf8))
        let verdict = lines.next()
        #expect(verdict == "FOUND", "\(verdict ?? "no answer"); \(lines.next() ?? "")")
        driver.waitUntilExit()
    }
}

/// Where `Scripts/live_page.py` keeps Chromium's profile and log, in the agent's directory.
enum LiveDriver {
    static let chromiumPath = "/usr/bin/chromium"

    /// Chromium's path, or nil after recording, by name, why the test cannot run without it.
    static func chromium(sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        guard FileManager.default.isExecutableFile(atPath: chromiumPath) else {
            Issue.record(
                "needs Chromium at \(chromiumPath) (apt package chromium; `make check` installs it)",
                sourceLocation: sourceLocation)
            return nil
        }
        return chromiumPath
    }

    /// A local page that signs the browser in to `agent` with the read-only token as it loads.
    static func signInForm(_ agent: AgentProcess) throws -> URL {
        let form = agent.directory.appendingPathComponent("signin.html")
        try Data(
            """
            <!DOCTYPE html><html><body><form method="post" action="http://127.0.0.1:\(agent.port)/login">
            <input name="token" value="\(AgentProcess.readOnlyToken)"></form><script>document.forms[0].submit()</script></body></html>
            """.utf8
        ).write(to: form)
        return form
    }

    static func environment(_ agent: AgentProcess) -> [String: String] {
        [
            "LIVE_PAGE_PROFILE": agent.directory.appendingPathComponent("chromium").path,
            "LIVE_PAGE_CHROMIUM_LOG": chromiumLog(agent).path,
        ]
    }

    /// The end of Chromium's own messages, for a failure's explanation.
    static func chromiumLogTail(_ agent: AgentProcess) -> Substring {
        ((try? String(contentsOf: chromiumLog(agent), encoding: .utf8)) ?? "").suffix(2000)
    }

    private static func chromiumLog(_ agent: AgentProcess) -> URL {
        agent.directory.appendingPathComponent("chromium.log")
    }
}

/// Lines from a pipe, one at a time (blocking).
final class LineReader {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer += chunk
        }
    }
}
