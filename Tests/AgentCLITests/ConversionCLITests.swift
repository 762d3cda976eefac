import Foundation
import TestSupport
import Testing

/// `memgate-agent run` with conversions: policy files, initial state, backend choice, summary.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ConversionCLITests {
    func agent(_ arguments: [String]) throws -> TestSupport.ProcessResult {
        try TestSupport.runAgent(Array(arguments))
    }

    func policyFile(_ json: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-policy-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        return url
    }

    @Test func implicitConversionsAreSummarized() throws {
        let result = try agent(["run", TestSupport.guestPath("implicit")])
        #expect(result.status == 0)
        #expect(result.stdout == "shared=0x0\nprivate=0x0\n")
        #expect(result.stderr.contains("memory faults: 2 emulated"))
        #expect(result.stderr.contains("to_shared implicit applied: 1 (4096 bytes)"))
        #expect(result.stderr.contains("to_private implicit applied: 1 (4096 bytes)"))
        #expect(result.stderr.contains("alias (protect): private pages in"))
    }

    @Test func deniedImplicitFaultExits127() throws {
        let policy = try policyFile(
            #"{"rules":[{"match":{"vm":"impl*","trigger":"implicit"},"action":"deny","reason":"no implicit conversions"}]}"#
        )
        defer { try? FileManager.default.removeItem(at: policy) }
        let result = try agent(["run", TestSupport.guestPath("implicit"), "--policy", policy.path])
        #expect(result.status == 127)
        #expect(result.stderr.contains("VM faulted: vCPU 0: implicit conversion of"))
        #expect(result.stderr.contains("refused: no implicit conversions"))
        #expect(result.stderr.contains("to_shared implicit denied: 1"))
        // The rule matches by VM name: another name is not denied.
        let other = try agent(["run", TestSupport.guestPath("implicit"), "--policy", policy.path, "--name", "tenant-b"])
        #expect(other.status == 0)
    }

    @Test func invalidPolicyIsRejectedNamingTheField() throws {
        let policy = try policyFile(#"{"limits":{"max_shared_bytes":"lots"}}"#)
        defer { try? FileManager.default.removeItem(at: policy) }
        let result = try agent(["run", TestSupport.guestPath("hello"), "--policy", policy.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("invalid policy"))
        #expect(result.stderr.contains("limits.max_shared_bytes"))
        #expect(result.stdout.isEmpty, "the guest must not run under an invalid policy")
    }

    @Test func initialStateReachesTheGuest() throws {
        let shared = try agent(["run", TestSupport.guestPath("bootinfo"), "--initial-state", "shared"])
        #expect(shared.stdout.contains("data_initial_state=0x1"))
        let defaulted = try agent(["run", TestSupport.guestPath("bootinfo")])
        #expect(defaulted.stdout.contains("data_initial_state=0x0"))
        let bad = try agent(["run", TestSupport.guestPath("bootinfo"), "--initial-state", "secret"])
        #expect(bad.status != 0 && bad.stderr.contains("initial-state"))
    }

    @Test func explicitBackendChoice() throws {
        let alias = try agent(["run", TestSupport.guestPath("explicit"), "--backend", "alias", "--arg", "0:1:0"])
        #expect(alias.status == 0 && alias.stdout == "r0=0\n")
        let caps = try agent(["caps", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(caps.stdout.utf8)) as? [String: Any])
        let backends = try #require(report["backends"] as? [[String: Any]])
        let attributesUsable = backends.first { $0["name"] as? String == "attributes" }?["usable"] as? Bool == true
        let attributes = try agent(["run", TestSupport.guestPath("hello"), "--backend", "attributes"])
        if attributesUsable {
            #expect(attributes.status == 0)
        } else {
            #expect(attributes.status == 2)
            #expect(attributes.stderr.contains("the attributes backend is not usable on this host"))
        }
    }

    @Test func selftestGuestWithoutHarnessFailsItsFirstHostCheck() throws {
        // Without a host-side harness the sync points answer 0 and change nothing,
        // so the guest's own check after SYNC_SHARED fails: the guest reports it and exits 103.
        let result = try agent([
            "run", TestSupport.guestPath("conversions"), "--initial-state", "shared", "--arg", "keep",
        ])
        #expect(result.status == 103)
        #expect(result.stdout.contains("FAIL vcpu 0 step 3"))
    }
}
