import Foundation
import SQLite
import TestSupport
import Testing

/// Issue 30: what was shared at a past moment, from a real agent's records, from memgatectl, and from
/// the fleet database once its agent is gone, each checked against a replay of the recorded conversions.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct PastMemoryTests {
    /// The applied conversions of VM `vm`, oldest first, as the agent lists them.
    func applied(_ agent: AgentProcess, vm: Int) throws -> [[String: Any]] {
        let page = AgentProcess.object(try agent.request("GET", "/v1/conversions?vm=\(vm)&decision=applied&limit=1000"))
        return page["items"] as? [[String: Any]] ?? []
    }

    /// Shared bytes after replaying `rows` on an initially private data RAM.
    func sharedBytes(_ rows: ArraySlice<[String: Any]>) -> Int {
        var shared = Set<Int>()
        for row in rows {
            let gpa = row["gpa"] as? Int ?? 0, size = row["size"] as? Int ?? 0
            for page in stride(from: gpa, to: gpa + size, by: 4096) {
                if row["direction"] as? String == "to_shared" { shared.insert(page) } else { shared.remove(page) }
            }
        }
        return shared.count * 4096
    }

    @Test func theMemoryAtAnyMomentIsTheReplayOfItsConversions() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let created = try agent.request(
            "POST", "/v1/vms", json: #"{"name":"past","image":"churn.elf","command_line":"300","memory_mib":16}"#)
        #expect(created.status == 201)
        _ = try agent.waitForEnd(1, seconds: 60)
        let rows = try applied(agent, vm: 1)
        #expect(rows.count == 300)
        for index in stride(from: 0, to: rows.count, by: 37) + [rows.count - 1] {
            let event = rows[index]["event_id"] as? Int ?? 0
            let memory = AgentProcess.object(try agent.request("GET", "/v1/vms/1/memory?at=\(event)"))
            #expect(memory["shared_bytes"] as? Int == sharedBytes(rows[...index]), "after event \(event)")
            #expect(memory["through_event_id"] as? Int == event && memory["at_event_id"] as? Int == event)
        }
        // By time, as an operator asks: memgatectl memory --at RFC 3339, at the moment of the 150th conversion.
        let middle = rows[149]["requested_ns"] as? Int ?? 0
        let seconds = middle / 1_000_000_000
        let fraction = String(format: "%09d", middle % 1_000_000_000)
        let formatter = ISO8601DateFormatter()
        let stamp = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))).replacingOccurrences(
            of: "Z", with: ".\(fraction)Z")
        let hosts = try hostsFile(["\(agent.url) host-a"])
        let shown = try ctl(["memory", "host-a", "past", "--at", stamp, "--hosts", hosts, "--json"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let upToThen = rows.prefix { ($0["requested_ns"] as? Int ?? 0) <= middle }
        #expect(jsonObject(shown.stdout)["shared_bytes"] as? Int == sharedBytes(upToThen), "\(shown.stdout)")
        let table = try ctl(["memory", "host-a", "past", "--at", stamp, "--hosts", hosts])
        #expect(
            table.status == 0 && table.stdout.contains("at ") && table.stdout.contains("through conversion"),
            "\(table.stdout)")
        // The picture of that moment, and the errors.
        let svg = try agent.request("GET", "/v1/vms/1/memory.svg?at=\(stamp)")
        #expect(
            svg.status == 200 && svg.text.contains("<svg") && svg.text.contains("past at"), "\(svg.text.prefix(300))")
        #expect(try agent.request("GET", "/v1/vms/1/memory?at=yesterday").status == 400)
        #expect(try agent.request("GET", "/v1/vms/9/memory?at=1").status == 404)
        #expect(try ctl(["memory", "host-a", "past", "--at", "soon", "--hosts", hosts]).status != 0)

        // The fleet database answers the same question for a VM whose agent is gone (the README's query).
        let fleet = agent.directory.appendingPathComponent("fleet.db").path
        #expect(try ctl(["audit", "pull", "--into", fleet, "--hosts", hosts]).status == 0)
        agent.terminate()
        let query = try #require(
            try TestSupport.readmeQueries(section: "Fleet audit SQL").first { $0.contains(":at_ns") })
        let pages = try SQLiteConnection(path: fleet, readOnly: true).query(
            query, [.text("host-a"), .integer(1), .integer(Int64(middle))])
        #expect(pages.count * 4096 == sharedBytes(upToThen), "\(pages.count) shared pages from the fleet database")
    }
}
