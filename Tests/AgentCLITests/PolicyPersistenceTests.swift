import Foundation
import TestSupport
import Testing

/// The policy in force is desired state: it survives restarts, and only an explicit
/// `--policy FILE` (recorded with its path) or a PUT replaces it.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct PolicyPersistenceTests {
    func history(_ agent: AgentProcess) throws -> [[String: Any]] {
        AgentProcess.object(try agent.request("GET", "/v1/policy/history"))["entries"] as? [[String: Any]] ?? []
    }

    @Test func aPushedPolicySurvivesRestartsAndOnlyAnExplicitFileReplacesIt() throws {
        let first = try AgentProcess()
        let directory = first.directory
        defer { first.removeFiles() }
        #expect(try history(first).map { $0["applied_by"] as? String } == ["built-in (first start)"])
        let builtIn = try #require(try first.request("GET", "/v1/policy").headers["etag"])
        let deny = #"{"name":"deny-implicit","defaults":{"implicit":"deny"}}"#
        #expect(try first.request("PUT", "/v1/policy", json: deny, headers: ["If-Match": builtIn]).status == 200)
        let pushed = try #require(try first.request("GET", "/v1/policy").headers["etag"])
        first.terminate()

        // Restarted without --policy: the pushed policy stands, and the history gains nothing.
        let second = try AgentProcess(directory: directory)
        #expect(try second.request("GET", "/v1/policy").headers["etag"] == pushed)
        #expect(try second.request("GET", "/v1/policy").text == deny)
        let entries = try history(second)
        #expect(entries.count == 2)
        #expect(entries.first?["applied_by"] as? String == "api: admin")
        #expect(entries.first?["name"] as? String == "deny-implicit")
        second.terminate()

        let file = directory.appendingPathComponent("allow.json")
        try Data(#"{"defaults":{"explicit":"allow","implicit":"allow"}}"#.utf8).write(to: file)
        // A start that fails (the Unix socket's directory does not exist) leaves the history alone.
        let failed = try TestSupport.runAgent([
            "serve", "--listen", "127.0.0.1:0", "--unix", directory.appendingPathComponent("missing/agent.sock").path,
            "--db", directory.appendingPathComponent("agent.db").path, "--policy", file.path,
            "--run-dir", directory.appendingPathComponent("run").path,
        ])
        #expect(failed.status != 0)

        // An explicit --policy replaces it, recorded with the file's path.
        let third = try AgentProcess(extraArguments: ["--policy", file.path], directory: directory)
        defer { third.terminate() }
        let after = try history(third)
        #expect(after.count == 3, "the failed start added no row: \(after)")
        #expect(after.first?["applied_by"] as? String == "serve --policy \(file.path)")
        #expect(try third.request("GET", "/v1/policy").headers["etag"] != pushed)
    }

    @Test func sloppyJSONIsRefusedByTheAPIWithItsPlace() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let etag = try #require(try agent.request("GET", "/v1/policy").headers["etag"])
        for document in [
            #"{"defaults":{"explicit":"deny"},}"#, #"{"defaults":{"explicit":"deny"}/**/}"#,
            #"{"limits":{"max_shared_bytes":NaN}}"#,
        ] {
            let put = try agent.request("PUT", "/v1/policy", json: document, headers: ["If-Match": etag])
            #expect(put.status == 422, "\(document): \(put.text)")
            let validation = AgentProcess.object(try agent.request("POST", "/v1/policy/validate", json: document))
            #expect(validation["valid"] as? Bool == false)
            #expect((validation["message"] as? String)?.contains("not valid JSON") == true, "\(validation)")
        }
        #expect(
            AgentProcess.object(
                try agent.request("POST", "/v1/policy/validate", json: #"{"limits":{"max_shared_bytes":NaN}}"#))[
                    "field"] as? String
                == "limits.max_shared_bytes")
        // Other bodies are strict too.
        let create = try agent.request("POST", "/v1/vms", json: #"{"name":"x","image":"spin-io.elf",}"#)
        #expect(create.status == 400 && create.text.contains("trailing commas"), "\(create.text)")
        #expect(try agent.request("GET", "/v1/policy").headers["etag"] == etag)

        // The same policy formatted two ways is one version: the second PUT changes nothing.
        let compact = #"{"defaults":{"explicit":"deny","implicit":"allow"}}"#
        #expect(try agent.request("PUT", "/v1/policy", json: compact, headers: ["If-Match": etag]).status == 200)
        let version = try #require(try agent.request("GET", "/v1/policy").headers["etag"])
        let pretty = "{\n  \"defaults\": {\n    \"implicit\": \"allow\",\n    \"explicit\": \"deny\"\n  }\n}\n"
        let again = AgentProcess.object(
            try agent.request("PUT", "/v1/policy", json: pretty, headers: ["If-Match": version]))
        #expect(again["changed"] as? Bool == false)
        #expect(try agent.request("GET", "/v1/policy").headers["etag"] == version)
    }
}
