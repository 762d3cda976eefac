import HTTPServer
import Testing

@testable import AgentAPI

@Suite struct SessionStoreTests {
    let viewer = Principal(name: "viewer", role: .readOnly)
    let second: UInt64 = 1_000_000_000

    @Test func aSessionLastsItsLifetimeAndNoLonger() {
        var store = SessionStore(lifetimeNanos: 60 * second)
        let id = store.create(for: viewer, nowNanos: 1000 * second)
        #expect(store.principal(for: id, nowNanos: 1059 * second) == viewer)
        #expect(store.principal(for: id, nowNanos: 1060 * second) == nil)
        #expect(store.principal(for: String(id.reversed()), nowNanos: 1000 * second) == nil)
        #expect(store.principal(for: "", nowNanos: 1000 * second) == nil)
    }

    @Test func idsAreRandomAndRevocable() {
        var store = SessionStore(lifetimeNanos: 60 * second)
        // Within one principal's share (past it, its own oldest would go).
        let ids = (0..<SessionStore.perPrincipal).map { _ in store.create(for: viewer, nowNanos: 0) }
        #expect(Set(ids).count == SessionStore.perPrincipal)
        #expect(ids.allSatisfy { $0.count == 64 && $0.allSatisfy(\.isHexDigit) })
        let first = store.revoke(ids[0])
        let again = store.revoke(ids[0])
        #expect(first && !again)
        #expect(store.principal(for: ids[0], nowNanos: 0) == nil)
        #expect(store.principal(for: ids[1], nowNanos: 0) == viewer)
    }

    @Test func reloadKeepsOnlySessionsWhoseTokenStaysWithItsRole() throws {
        var store = SessionStore(lifetimeNanos: 60 * second)
        let viewerSession = store.create(for: viewer, nowNanos: 0)
        let adminSession = store.create(for: Principal(name: "admin", role: .admin), nowNanos: 0)
        store.keepOnly(try TokenStore(text: "admin admin 0123456789abcdef0123\nviewer admin fedcba98765432100123\n"))
        #expect(store.principal(for: viewerSession, nowNanos: 0) == nil, "its role changed")
        #expect(store.principal(for: adminSession, nowNanos: 0)?.name == "admin")
    }

    @Test func theStoreIsBounded() {
        var store = SessionStore(lifetimeNanos: 60 * second)
        // Many principals, each under its own share: the whole table still stops at its capacity.
        let principals = SessionStore.capacity / SessionStore.perPrincipal + 10
        for index in 0..<(principals * SessionStore.perPrincipal) {
            _ = store.create(for: Principal(name: "p\(index % principals)", role: .readOnly), nowNanos: UInt64(index))
        }
        #expect(store.count == SessionStore.capacity)
    }

    @Test func failedCredentialsWaitOutTheWindowByNetwork() {
        var throttle = CredentialThrottle(limit: 3, addressLimit: 2, windowNanos: 60 * second)
        for _ in 0..<3 { throttle.failed(address: "10.0.0.1", nowNanos: 0) }
        // The network is throttled now; an address of it may still be checked until it fails addressLimit times itself.
        #expect(throttle.verdict(address: "10.0.0.1", nowNanos: 0) == .check)
        for _ in 0..<2 { throttle.failed(address: "10.0.0.1", nowNanos: 0) }
        #expect(throttle.verdict(address: "10.0.0.1", nowNanos: 10 * second) == .refuse(retryAfterSeconds: 51))
        #expect(
            throttle.verdict(address: "10.0.0.77", nowNanos: 10 * second) == .check,
            "another address of the network is checked")
        #expect(throttle.verdict(address: "10.0.1.1", nowNanos: 10 * second) == .check)
        #expect(throttle.verdict(address: "10.0.0.1", nowNanos: 60 * second) == .check)
    }

    /// 4,116 strangers from distinct networks cannot lock out a correct token from a fresh address:
    /// it lands in the shared overflow allowance, which is throttled, and is still checked.
    @Test func aFullTableLocksOutNoFreshAddress() {
        var throttle = CredentialThrottle(limit: 10, addressLimit: 3, windowNanos: 60 * second)
        for index in 0..<(CredentialThrottle.capacity + 20) {
            throttle.failed(address: "127.\(1 + index / 256).\(index % 256).1", nowNanos: 0)
        }
        #expect(throttle.verdict(address: "127.200.0.9", nowNanos: 0) == .check)
        // The overflow allowance counts too: an address that keeps failing there is refused.
        for _ in 0..<20 { throttle.failed(address: "127.201.0.1", nowNanos: 0) }
        #expect(throttle.verdict(address: "127.201.0.1", nowNanos: 0) != .check)
        #expect(throttle.verdict(address: "127.202.0.1", nowNanos: 0) == .check)
    }

    /// One principal's many sign-ins evict only its own sessions.
    @Test func sessionsAreBoundedPerPrincipal() {
        var store = SessionStore(lifetimeNanos: 60 * second)
        let admin = store.create(for: Principal(name: "admin", role: .admin), nowNanos: 0)
        for index in 0..<(SessionStore.capacity + 10) { _ = store.create(for: viewer, nowNanos: UInt64(index + 1)) }
        #expect(store.principal(for: admin, nowNanos: 100)?.name == "admin")
        #expect(store.count == SessionStore.perPrincipal + 1)
    }

    @Test func addressesCountByTheirNetwork() {
        let prefix = AddressPrefix()
        #expect(prefix.key("127.0.4.17") == "127.0.4.0/24")
        #expect(prefix.key("127.0.4.200") == prefix.key("127.0.4.1"))
        #expect(prefix.key("127.0.5.1") != prefix.key("127.0.4.1"))
        #expect(prefix.key("[2001:db8:1:2:3:4:5:6]") == "2001:db8:1:2:0:0:0:0/64")
        #expect(prefix.key("::ffff:10.1.2.3") == "10.1.2.0/24")
        #expect(prefix.key("unix uid 0") == "unix uid 0")
        #expect(AddressPrefix(ipv4Bits: 32, ipv6Bits: 128).key("10.1.2.3") == "10.1.2.3/32")
        #expect(AddressPrefix(ipv4Bits: 20, ipv6Bits: 48).key("10.1.31.3") == "10.1.16.0/20")
    }

    /// Each stream reader's share of the process-wide budget: the total never grows with the readers.
    @Test func streamReadersShareOneBudget() {
        var limits = EventStreamHub.Limits()
        limits.bufferBytes = 1 << 20
        limits.totalBufferBytes = 32 << 20
        #expect(EventStreamHub.readerLimit(limits, readers: 1) == 1 << 20)
        #expect(EventStreamHub.readerLimit(limits, readers: 256) == 128 << 10)
        #expect(EventStreamHub.readerLimit(limits, readers: 100_000) == 64 << 10)
        for readers in [1, 16, 64, 256] {
            #expect(EventStreamHub.readerLimit(limits, readers: readers) * readers <= 32 << 20)
        }
    }
}
