import JSON
import APITypes
import Foundation
import Testing

/// The fast writer's output means exactly what JSONEncoder's does.
struct JSONWriterTests {
    static let conversion = ConversionEvent(
        eventId: 42, vmId: 7, vcpu: 1, requestedNs: 1_795_000_000_000_000_000, completedNs: nil, gpa: 0x20_0000, size: 4096,
        direction: "to_shared", trigger: "explicit", decision: "denied", reason: "rule 0: \"quoted\" \\ tab\t nl\n ctl\u{01} é",
        policyVersion: "abc", source: "emulated", changedBytes: 0, discardedBytes: 0, guestResult: -1)
    static let fault = FaultEvent(eventId: 41, vmId: 7, vcpu: 0, timeNs: UInt64.max, gpa: 0, size: 4096, flags: 8, source: "emulated")

    func roundTrip<T: Codable & Equatable & JSONWritable>(_ value: T) throws -> T {
        var writer = JSONWriter()
        value.write(to: &writer)
        return try APIJSON.decoder().decode(T.self, from: Data(writer.bytes))
    }

    @Test func decodesToTheSameValues() throws {
        #expect(try roundTrip(Self.conversion) == Self.conversion)
        var completed = Self.conversion
        completed.completedNs = 5
        #expect(try roundTrip(completed) == completed)
        #expect(try roundTrip(Self.fault) == Self.fault)
        let validation = PolicyValidation(valid: false, version: nil, changed: false, currentVersion: "abc", field: "rules[0]", message: "no \"x\"")
        #expect(try roundTrip(validation) == validation)
        let valid = PolicyValidation(valid: true, version: "v2", changed: true, currentVersion: "v1")
        #expect(try roundTrip(valid) == valid)
        #expect(try roundTrip(PolicyApplied(version: "v", changed: false)) == PolicyApplied(version: "v", changed: false))
        let events = EventPage(events: [EventEntry(fault: Self.fault), EventEntry(conversion: Self.conversion)], nextAfter: 42)
        #expect(try roundTrip(events) == events)
    }

    @Test func sameKeysAsJSONEncoder() throws {
        var writer = JSONWriter()
        Self.conversion.write(to: &writer)
        let fast = try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: Any]
        let slow = try JSONSerialization.jsonObject(with: APIJSON.encoder().encode(Self.conversion)) as? [String: Any]
        #expect(fast.map { Set($0.keys) } == slow.map { Set($0.keys) })
        #expect(String(decoding: writer.bytes, as: UTF8.self).hasPrefix(#"{"changed_bytes":0,"decision":"denied","#))
    }
}
