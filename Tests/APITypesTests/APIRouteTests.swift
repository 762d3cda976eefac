import APITypes
import Foundation
import Testing

/// The one route table: it and `openapi.yaml` list the same paths, and every template
/// matches the paths built from it.
struct APIRouteTests {
    /// The paths `openapi.yaml` documents (its two-space `  /…:` keys under `paths:`).
    func documentedPaths() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        return Set(
            text.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("  /"), line.hasSuffix(":") else { return nil }
                return String(line.dropFirst(2).dropLast())
            })
    }

    @Test func theTableAndOpenAPIListTheSamePaths() throws {
        let documented = try documentedPaths()
        let table = Set(APIRoute.templates.map(\.rawValue))
        #expect(documented.count > 20, "openapi.yaml read: \(documented.count) paths")
        #expect(
            table.subtracting(documented).isEmpty,
            "in the table, not in openapi.yaml: \(table.subtracting(documented).sorted())")
        #expect(
            documented.subtracting(table).isEmpty,
            "in openapi.yaml, not in the table: \(documented.subtracting(table).sorted())")
    }

    @Test func everyTemplateMatchesThePathsBuiltFromIt() {
        for route in APIRoute.templates {
            let built = route.path(42)
            let (matched, parameter) = APIRoute.match(Substring(built))
            #expect(matched == route, "\(built) matched \(matched)")
            #expect(parameter == (route.rawValue.contains("{") ? "42" : nil))
        }
        #expect(APIRoute.vmStop.path(7) == "/v1/vms/7/stop")
        #expect(APIRoute.events.path(query: "after=5") == "/v1/events?after=5")
        #expect(APIRoute.match("/v1/events/stream").route == .eventStream, "a literal wins over nothing")
        #expect(APIRoute.match("/v1/vms/3/reboot").route == .unknown)
        #expect(APIRoute.match("/v2/vms").route == .unknown && APIRoute.match("").route == .unknown)
        #expect(
            APIRoute.match("/v1/vms/").route == .vm && APIRoute.match("/v1/vms/").parameter == "",
            "an empty id is the router's to refuse")
    }
}
