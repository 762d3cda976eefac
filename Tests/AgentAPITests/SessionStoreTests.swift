@testable import AgentAPI
import Testing

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
        let ids = (0..<100).map { _ in store.create(for: viewer, nowNanos: 0) }
        #expect(Set(ids).count == 100)
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
        for index in 0..<(SessionStore.capacity + 10) { _ = store.create(for: viewer, nowNanos: UInt64(index)) }
        #expect(store.count == SessionStore.capacity)
    }

    @Test func failedSignInsWaitOutTheWindow() {
        var throttle = SignInThrottle(limit: 3, windowNanos: 60 * second)
        for _ in 0..<2 { throttle.failed(peer: "10.0.0.1", nowNanos: 0) }
        #expect(throttle.retryAfter(peer: "10.0.0.1", nowNanos: 0) == nil)
        throttle.failed(peer: "10.0.0.1", nowNanos: 0)
        #expect(throttle.retryAfter(peer: "10.0.0.1", nowNanos: 10 * second) == 51)
        #expect(throttle.retryAfter(peer: "10.0.0.2", nowNanos: 10 * second) == nil)
        #expect(throttle.retryAfter(peer: "10.0.0.1", nowNanos: 60 * second) == nil)
    }

    @Test func aFullThrottleStillCountsNewAddresses() {
        var throttle = SignInThrottle(limit: 2, windowNanos: 60 * second)
        for index in 0..<SignInThrottle.capacity { throttle.failed(peer: "p\(index)", nowNanos: 0) }
        throttle.failed(peer: "new-a", nowNanos: 0)
        throttle.failed(peer: "new-b", nowNanos: 0)
        #expect(throttle.retryAfter(peer: "new-c", nowNanos: 0) != nil, "overflow addresses share one allowance")
    }
}
