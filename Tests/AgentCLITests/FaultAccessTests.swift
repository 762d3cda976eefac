import Foundation
import TestSupport
import Testing

/// The access type of every fault, end to end: a guest that reads through the wrong alias and
/// one that writes through it, recorded, filtered, exported.
@Suite struct FaultAccessTests {
    @Test func readsAndWritesAreRecordedAsSuch() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var ids: [String: Int] = [:]
        // implicit.elf reads pages through the wrong alias; conversions.elf writes them.
        for image in ["implicit", "conversions"] {
            let response = try agent.request("POST", "/v1/vms", json: #"{"name":"\#(image)","image":"\#(image).elf"}"#)
            #expect(response.status == 201, "\(response.text)")
            ids[image] = AgentProcess.object(response)["id"] as? Int
            _ = try agent.waitForEnd(ids[image] ?? 0)
        }
        func faults(_ query: String) throws -> [[String: Any]] {
            AgentProcess.object(try agent.request("GET", "/v1/memory-faults?limit=1000&\(query)"))["items"]
                as? [[String: Any]] ?? []
        }
        let reads = try faults("vm=\(ids["implicit"] ?? 0)")
        #expect(!reads.isEmpty && reads.allSatisfy { $0["access"] as? String == "read" }, "\(reads.prefix(2))")
        let writes = try faults("vm=\(ids["conversions"] ?? 0)")
        #expect(!writes.isEmpty && writes.allSatisfy { $0["access"] as? String == "write" }, "\(writes.prefix(2))")
        #expect(try faults("access=read").count == reads.count)
        #expect(try faults("access=write").count == writes.count)
        #expect(try faults("access=exec").isEmpty && (try faults("access=unknown")).isEmpty)
        #expect(try agent.request("GET", "/v1/memory-faults?access=sideways").status == 400)
        let metrics = try agent.request("GET", "/metrics").text
        #expect(metrics.contains("memgate_memory_fault_accesses_total{access=\"read\"} \(reads.count)"))
        #expect(metrics.contains("memgate_memory_fault_accesses_total{access=\"write\"} \(writes.count)"))
        #expect(
            metrics.contains("memgate_memory_fault_accesses_total{access=\"exec\"} 0"),
            "every known label from the start")
    }
}
