import Foundation
import TestSupport
import Testing

/// The agent daemon on a real private-memory KVM (inside `make check-privmem`'s nested host).
@Suite(
    .enabled(
        if: HostCapabilities.current.attributesBackend,
        "private-memory tests skipped: this host's KVM cannot run the attributes backend (no PRIVATE memory attribute, guest_memfd, USER_MEMORY2 or MEMORY_FAULT_INFO; run make check-privmem)"
    ))
struct PrivateMemoryAgentTests {
    @Test func aVMOnTheAttributesBackendThroughTheAPI() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let host = AgentProcess.object(try agent.request("GET", "/v1/host"))
        let backends = host["backends"] as? [[String: Any]] ?? []
        #expect(backends.contains { $0["name"] as? String == "attributes" && $0["usable"] as? Bool == true })
        let created = try agent.request(
            "POST", "/v1/vms",
            json:
                #"{"name":"attributed","image":"explicit.elf","command_line":"0:4:0 2000:1:0 0:2:10","memory_mib":32,"backend":"attributes"}"#
        )
        #expect(created.status == 201, "\(created.text)")
        let id = AgentProcess.object(created)["id"] as? Int ?? 0
        let ended = try agent.waitForEnd(id, seconds: 120)
        #expect(ended["exit_status"] as? Int == 0, "\(ended)")
        #expect(ended["backend"] as? String == "attributes")
        let conversions =
            AgentProcess.object(try agent.request("GET", "/v1/conversions?vm=\(id)"))["items"] as? [[String: Any]] ?? []
        #expect(conversions.map { $0["decision"] as? String } == ["applied", "applied", "applied"])
        #expect(conversions.map { $0["direction"] as? String } == ["to_shared", "to_shared", "to_private"])
        let memory = AgentProcess.object(try agent.request("GET", "/v1/vms/\(id)/memory"))
        // Pages 0-3 went shared (page 2 again, a no-op), then pages 0-1 private: pages 2-3 stay shared.
        #expect(memory["shared_bytes"] as? Int == 2 * 4096, "\(memory)")
    }
}
