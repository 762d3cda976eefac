import APITypes
import Foundation
import TestSupport
import Testing

/// Every endpoint's JSON decodes into its `APITypes` type with `APIJSON.decoder()`, the
/// controller's own decoder (schemathesis checks the same bodies against openapi.yaml in
/// `make api-check`): the agent, the spec and the controller agree on one shape.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ContractTests {
    func decode<T: Decodable>(
        _ type: T.Type, _ agent: AgentProcess, _ method: String, _ path: String, json: String? = nil,
        headers: [String: String] = [:], status: Int = 200
    ) throws -> T {
        let response = try agent.request(method, path, json: json, headers: headers)
        #expect(response.status == status, "\(method) \(path): \(response.status) \(response.text)")
        #expect(response.headers["content-type"] == "application/json", "\(method) \(path)")
        do {
            return try APIJSON.decoder().decode(T.self, from: Data(response.body))
        } catch {
            Issue.record("\(method) \(path) does not decode as \(T.self): \(error)\n\(response.text)")
            throw error
        }
    }

    @Test func everyEndpointDecodesIntoItsAPIType() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let created = try decode(
            VMInfo.self, agent, "POST", "/v1/vms",
            json: #"{"name":"contract","image":"implicit.elf","memory_mib":32,"labels":{"t":"1"}}"#, status: 201)
        _ = try agent.waitForEnd(Int(created.id))
        let id = created.id
        let health = try decode(Health.self, agent, "GET", "/healthz")
        #expect(health.status == "ok")
        let host = try decode(HostInfo.self, agent, "GET", "/v1/host")
        #expect(host.vms["stopped"] == 1)
        #expect(try decode(VMList.self, agent, "GET", "/v1/vms").vms.map(\.id) == [id])
        #expect(try decode(VMInfo.self, agent, "GET", "/v1/vms/\(id)").labels == ["t": "1"])
        #expect(try decode(ConsoleChunk.self, agent, "GET", "/v1/vms/\(id)/console?after=0").vmId == id)
        #expect(try decode(VMMemory.self, agent, "GET", "/v1/vms/\(id)/memory").privateBytes == 30 << 20)
        #expect(try decode(FaultPage.self, agent, "GET", "/v1/memory-faults?vm=\(id)").items.count == 2)
        #expect(try decode(ConversionPage.self, agent, "GET", "/v1/conversions?vm=\(id)").items.count == 2)
        #expect(try decode(EventPage.self, agent, "GET", "/v1/events?after=0").events.count == 4)
        let validation = try decode(
            PolicyValidation.self, agent, "POST", "/v1/policy/validate", json: #"{"defaults":{"explicit":"deny"}}"#)
        #expect(validation.valid && validation.changed)
        let applied = try decode(
            PolicyApplied.self, agent, "PUT", "/v1/policy", json: #"{"defaults":{"explicit":"deny"}}"#,
            headers: ["If-Match": "*"])
        #expect(applied.changed && applied.version == validation.version)
        let history = try decode(PolicyHistory.self, agent, "GET", "/v1/policy/history")
        #expect(history.entries.first?.version == applied.version)
        #expect(history.entries.map(\.id) == [2, 1], "newest first, by application id")
        let document = try agent.request("GET", "/v1/policy/documents/\(applied.version)")
        #expect(document.status == 200 && document.text == #"{"defaults":{"explicit":"deny"}}"#)
        #expect(try agent.request("GET", "/v1/policy/documents/\(String(repeating: "0", count: 64))").status == 404)
        let requests = try decode(APIRequestPage.self, agent, "GET", "/v1/audit/requests?after=0")
        #expect(requests.items.map(\.method) == ["POST", "PUT"] && requests.items.map(\.client) == ["admin", "admin"])
        #expect(requests.nextAfter == requests.items.last?.id)
        // The end is past every event listed so far, and nothing comes after it yet.
        let end = try decode(EventPage.self, agent, "GET", "/v1/events?from=end").nextAfter
        #expect(end >= (try decode(EventPage.self, agent, "GET", "/v1/events?after=0").events.last?.eventId ?? .max))
        #expect(try decode(EventPage.self, agent, "GET", "/v1/events?after=\(end)").events.isEmpty)
        // Errors have the one shape too.
        let missing = try decode(APIErrorBody.self, agent, "GET", "/v1/vms/999", status: 404)
        #expect(missing.error.code == "not_found")
        let invalid = try decode(
            APIErrorBody.self, agent, "POST", "/v1/vms", json: #"{"name":"x","image":"y","name":"z"}"#, status: 422)
        #expect(invalid.error.message.contains("twice"))
    }
}
