import Foundation
import TestSupport
import Testing

/// Issue 31, item 8: `conversions` over many hosts pages with one cursor that holds every
/// host's place, and the merged timeline has no hole, through the real binary against two agents.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct FleetPagingTests {
    /// A VM that makes `count` conversions, run to its end.
    func churn(_ agent: AgentProcess, _ name: String, _ count: Int) throws {
        let created = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"\#(name)","image":"churn.elf","command_line":"\#(count)","memory_mib":16}"#)
        #expect(created.status == 201, "\(created.text)")
        _ = try agent.waitForEnd(AgentProcess.object(created)["id"] as? Int ?? -1)
    }

    /// `(host, event id, requested_ns)` of each listed row.
    func rows(_ output: String) -> [(String, Int, Int)] {
        (jsonObject(output)["items"] as? [[String: Any]] ?? []).map {
            ($0["host"] as? String ?? "", $0["event_id"] as? Int ?? -1, $0["requested_ns"] as? Int ?? -1)
        }
    }

    @Test func oneCursorPagesEveryHostWithoutHoles() throws {
        let a = try AgentProcess(), b = try AgentProcess()
        defer {
            for agent in [a, b] {
                agent.terminate()
                agent.removeFiles()
            }
        }
        // Interleaved in time: a's first VM, then b's, then a's second.
        try churn(a, "a-1", 5)
        try churn(b, "b-1", 5)
        try churn(a, "a-2", 5)
        let hosts = try hostsFile(["\(a.url) host-a", "\(b.url) host-b"])

        let whole = try ctl(["conversions", "--hosts", hosts, "--limit", "1000", "-o", "json"])
        #expect(whole.status == 0 && jsonObject(whole.stdout)["next_cursor"] == nil, "\(whole.stderr)")
        let timeline = rows(whole.stdout)
        #expect(timeline.count == 15)
        #expect(timeline.map(\.2) == timeline.map(\.2).sorted())

        // Two rows per host a page: following the printed cursor gives the same timeline, row for row.
        var paged: [(String, Int, Int)] = []
        var cursor: String?
        for _ in 0..<20 {
            let page = try ctl(
                ["conversions", "--hosts", hosts, "--limit", "2", "-o", "json"]
                    + (cursor.map { ["--cursor", $0] } ?? []))
            #expect(page.status == 0, "\(page.stderr)")
            paged += rows(page.stdout)
            cursor = jsonObject(page.stdout)["next_cursor"] as? String
            if let cursor {
                #expect(page.stderr.contains("--cursor \(cursor)"), "the notice names the cursor: \(page.stderr)")
            }
            guard cursor != nil else { break }
        }
        #expect(cursor == nil, "the listing never ended")
        #expect(
            paged.map(\.0) == timeline.map(\.0) && paged.map(\.1) == timeline.map(\.1),
            "paged: \(paged)\nwhole: \(timeline)")

        // A host's own number applies to one host only; a cursor made for other hosts is refused.
        let number = try ctl(["conversions", "--hosts", hosts, "--cursor", "3"])
        #expect(number.status == 2 && number.stderr.contains("one host's place"), "\(number.stderr)")
        let first = try ctl(["conversions", "--hosts", hosts, "--limit", "2", "-o", "json"])
        let made = try #require(jsonObject(first.stdout)["next_cursor"] as? String)
        let onlyA = try hostsFile(["\(a.url) host-a"])
        let other = try ctl(["conversions", "--hosts", onlyA, "--cursor", made])
        #expect(
            other.status == 2 && other.stderr.contains("the cursor holds places on host-a, host-b"), "\(other.stderr)")
        let garbage = try ctl(["conversions", "--hosts", hosts, "--cursor", "mgc1.!!"])
        #expect(garbage.status == 2 && garbage.stderr.contains("not a cursor memgatectl printed"), "\(garbage.stderr)")
        // The newest rows over every host, as kubectl logs --tail.
        let tail = try ctl(["conversions", "--hosts", hosts, "--tail", "4", "-o", "json"])
        #expect(
            rows(tail.stdout).map(\.1) == timeline.suffix(4).map(\.1)
                && rows(tail.stdout).map(\.0) == timeline.suffix(4).map(\.0))
    }
}
