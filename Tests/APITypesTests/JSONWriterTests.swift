import APITypes
import Foundation
import JSON
import Testing

/// The fast writer's output means exactly what JSONEncoder's does.
struct JSONWriterTests {
    static let conversion = ConversionEvent(
        eventId: 42, vmId: 7, vcpu: 1, requestedNs: 1_795_000_000_000_000_000, completedNs: nil, gpa: 0x20_0000,
        size: 4096,
        direction: "to_shared", trigger: "explicit", decision: "denied",
        reason: "rule 0: \"quoted\" \\ tab\t nl\n ctl\u{01} é",
        policyVersion: "abc", source: "emulated", changedBytes: 0, discardedBytes: 0, guestResult: -1)

    func roundTrip<T: Codable & Equatable & JSONWritable>(_ value: T) throws -> T {
        var writer = JSONWriter()
        value.write(to: &writer)
        return try APIJSON.decoder().decode(T.self, from: Data(writer.bytes))
    }

    @Test func decodesToTheSameValues() throws {
        let validation = PolicyValidation(
            valid: false, version: nil, changed: false, currentVersion: "abc", field: "rules[0]", message: "no \"x\"")
        #expect(try roundTrip(validation) == validation)
        let valid = PolicyValidation(valid: true, version: "v2", changed: true, currentVersion: "v1")
        #expect(try roundTrip(valid) == valid)
        #expect(
            try roundTrip(PolicyApplied(version: "v", changed: false)) == PolicyApplied(version: "v", changed: false))
    }

    @Test func sameBytesAsJSONEncoder() throws {
        let validation = PolicyValidation(
            valid: false, version: nil, changed: false, currentVersion: "abc", field: "rules[0]",
            message: "rule 0: \"quoted\" \\ tab\t nl\n ctl\u{01} é")
        var writer = JSONWriter()
        validation.write(to: &writer)
        #expect(writer.bytes == Array(try APIJSON.encoder().encode(validation)))
    }

    /// The one escaper: quotes, backslashes and control characters, the rest as is.
    @Test func stringsAreEscapedOnce() throws {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("text", Self.conversion.reason)
        writer.endObject()
        let decoded = try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: String]
        #expect(decoded?["text"] == Self.conversion.reason)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self) == #"{"text":"rule 0: \"quoted\" \\ tab\t nl\n ctl\u0001 é"}"#
        )
    }
}
