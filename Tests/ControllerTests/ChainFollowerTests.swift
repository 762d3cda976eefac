import APITypes
import Controller
import JSON
import MemoryModel
import Testing

/// The controller's side of the audit chain, on entries built here: what links, what breaks, and where a pull starts.
@Suite struct ChainFollowerTests {
    /// `count` fault entries from id `first`, chained from `start`, as the agent renders them.
    func entries(from first: Int64, count: Int, start: [UInt8] = ChainLink.zero) -> (
        entries: [JSONValue], last: [UInt8]
    ) {
        var value = start
        var out: [JSONValue] = []
        for id in first..<(first + Int64(count)) {
            let body = try? StrictJSON.parse(
                Array(
                    """
                    {"event_id":\(id),"kind":"memory_fault","memory_fault":{"access":"write","event_id":\(id),"flags":8,"gpa":\(4096 * id),\
                    "size":4096,"source":"kvm","time_ns":\(1000 + id),"vcpu":0,"vm_id":1}}
                    """.utf8))
            guard case .object(var members)? = body else { continue }
            value = ChainLink.link(value, ChainLink.canonical(entry: .object(members)))
            members.append(JSONValue.Member(key: "chain", value: .string(SHA256.hexString(value))))
            out.append(.object(members))
        }
        return (out, value)
    }

    func head(_ id: Int64, _ value: [UInt8], genesis: ChainGenesis? = nil) -> ChainHead {
        ChainHead(lastId: id, chain: SHA256.hexString(value), count: id, timeNs: nil, genesis: genesis)
    }

    @Test func aChainFromItsStartLinksAndAnEditedEntryBreaksWhereItIs() throws {
        let (all, last) = entries(from: 1, count: 10)
        var follower = try ChainFollower.start(chain: "events", stored: nil, live: head(10, last)).get().follower
        #expect(
            follower.accept(all).broke == nil && follower.head == StoredChainHead(id: 10, chain: SHA256.hexString(last))
        )
        // Event 4 edited: its bytes no longer give the value it carries.
        var edited = all
        if case .object(var members) = edited[3] {
            members[members.count - 2].value = .object([JSONValue.Member(key: "flags", value: .number("0"))])
            edited[3] = .object(members)
        }
        var again = try ChainFollower.start(chain: "events", stored: nil, live: head(10, last)).get().follower
        let (valid, broke) = again.accept(edited)
        #expect(valid == 3 && broke?.id == 4 && broke?.afterID == 3)
        // Event 6 removed: 7 no longer extends 5.
        var removed = all
        removed.remove(at: 5)
        var third = try ChainFollower.start(chain: "events", stored: nil, live: head(10, last)).get().follower
        #expect(third.accept(removed).broke?.id == 7)
    }

    @Test func aPullGoesOnFromTheStoredHeadAndCatchesAShorterHistory() throws {
        let (first, middle) = entries(from: 1, count: 5)
        let (second, last) = entries(from: 6, count: 5, start: middle)
        _ = first
        let stored = StoredChainHead(id: 5, chain: SHA256.hexString(middle))
        let start = try ChainFollower.start(chain: "events", stored: stored, live: head(10, last)).get()
        #expect(start.mustShow == stored)
        var follower = start.follower
        #expect(follower.accept(second).broke == nil)
        // A host whose chain now ends before what it once showed.
        guard case .failure(let shorter) = ChainFollower.start(chain: "events", stored: stored, live: head(4, middle))
        else {
            Issue.record("a shorter history was accepted")
            return
        }
        #expect(shorter.id == 5)
        // The stored head shown with another value: rewritten.
        #expect(
            ChainFollower.showsHead(stored, entry: second.first, chain: "events")?.id == 5, "event 6 is not the head")
        #expect(ChainFollower.showsHead(stored, entry: first.last, chain: "events") == nil)
    }

    @Test func aPruneBeyondTheStoredHeadIsAcceptedFromTheGenesis() throws {
        let (_, cut) = entries(from: 1, count: 8)
        let (rest, last) = entries(from: 9, count: 4, start: cut)
        let genesis = ChainGenesis(
            throughId: 8, chain: SHA256.hexString(cut), pruned: 8, firstNs: 1, lastNs: 8, timeNs: 9)
        let start = try ChainFollower.start(
            chain: "events", stored: StoredChainHead(id: 3, chain: String(repeating: "0", count: 64)),
            live: head(12, last, genesis: genesis)
        ).get()
        #expect(start.acceptedCut?.from == 3 && start.acceptedCut?.through == 8 && start.mustShow == nil)
        var follower = start.follower
        #expect(follower.accept(rest).broke == nil && follower.lastID == 12)
        // A cut exactly at the stored head must carry its value.
        let atHead = ChainFollower.start(
            chain: "events", stored: StoredChainHead(id: 8, chain: String(repeating: "1", count: 64)),
            live: head(12, last, genesis: genesis))
        #expect((try? atHead.get()) == nil)
    }
}
