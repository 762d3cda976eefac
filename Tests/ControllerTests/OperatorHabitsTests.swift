import APITypes
import JSON
import MemoryModel
import Testing

@testable import Controller

@Suite struct JSONPathTests {
    let document = try! StrictJSON.parse(
        Array(#"{"hosts":[{"host":"h0","drift":null,"n":1},{"host":"h1","drift":"drift","n":2}],"v":"x"}"#.utf8))

    @Test func selectsAsKubectlUsersWriteIt() throws {
        #expect(try JSONPath("{.hosts[*].host}").render(document) == "h0\nh1")
        #expect(try JSONPath(".hosts[1].drift").render(document) == "drift")
        #expect(try JSONPath("$.hosts[-1]['n']").render(document) == "2")
        #expect(try JSONPath("{.hosts[0]}").render(document) == #"{"drift":null,"host":"h0","n":1}"#)
        #expect(try JSONPath(".v").render(document) == "x")
        #expect(try JSONPath(".missing[3].x").render(document) == "")
        #expect(try JSONPath("{.hosts[*].*}").select(document).count == 6)
    }

    @Test(arguments: ["{.hosts", ".hosts[", ".hosts[x]", "hosts", ".", ".a..b"])
    func malformedPathsAreRefused(path: String) {
        #expect(throws: JSONPath.SyntaxError.self) { try JSONPath(path) }
    }

    /// kubectl's features this subset does not take are named, not reported as a generic syntax error.
    @Test(arguments: [
        ("{.items[?(@.name==\"a\")].id}", "filters"), ("{range .items[*]}{.name}{end}", "range/end"),
        ("{..name}", "recursive descent"), ("{.items[0:2]}", "slices"),
    ])
    func unsupportedFeaturesAreNamed(path: String, feature: String) {
        do {
            _ = try JSONPath(path)
            Issue.record("\(path) was taken")
        } catch {
            #expect(error.message.hasPrefix(feature) && error.message.contains("not supported"), "\(error)")
        }
    }

    /// The config file as set-context writes it reads back the same.
    @Test func aRenderedConfigReadsBackTheSame() throws {
        var config = ContextConfig()
        var context = ContextConfig.Context()
        context.hosts = "/h"
        context.tokenFile = "/t"
        context.select = ["a=b", "c=d"]
        config.contexts = ["prod": context, "lab": ContextConfig.Context()]
        config.currentContext = "prod"
        #expect(try ContextConfig(bytes: Array(config.rendered().utf8), path: "c") == config)
    }
}

@Suite struct ContextConfigTests {
    @Test func contextsAndTheCurrentOne() throws {
        let config = try ContextConfig(
            bytes: Array(
                #"""
                {"current_context": "prod", "contexts": {
                  "prod": {"hosts": "/etc/memgate/prod.hosts", "token_file": "/t", "select": ["env=prod"]},
                  "lab": {"hosts": "/lab.hosts"}}}
                """#.utf8), path: "c")
        #expect(try config.context(nil)?.hosts == "/etc/memgate/prod.hosts")
        #expect(try config.context(nil)?.select == ["env=prod"])
        #expect(try config.context("lab")?.hosts == "/lab.hosts")
        #expect(throws: InventoryError.self) { try config.context("nope") }
    }

    @Test(arguments: [
        #"{"contexts":{"a":{"hostz":"x"}}}"#, #"{"current_context":"b","contexts":{}}"#,
        #"{"contexts":{"a":{"select":"x"}}}"#,
        #"{"contexts":{"a":{}},}"#, "[]", #"{"extra":1}"#,
    ])
    func badConfigsAreRefusedByName(text: String) {
        #expect(throws: InventoryError.self) { try ContextConfig(bytes: Array(text.utf8), path: "c") }
    }
}

@Suite struct PolicyDriftTests {
    @Test func theMajorityOrTheExpectedVersionIsTheReference() {
        let drift = PolicyDrift(versions: ["a", "b", "a", nil])
        #expect(drift.reference == "a")
        #expect((0..<4).map(drift.flag) == [nil, "drift", nil, nil])
        let expected = PolicyDrift(versions: ["aaaa", "bbbb"], expected: "bb")
        #expect((0..<2).map(expected.flag) == ["drift", nil])
        let split = PolicyDrift(versions: ["a", "b"])
        #expect(split.reference == nil && split.flag(0) == "split" && split.anyDrift)
        #expect(!PolicyDrift(versions: ["a", "a", nil]).anyDrift)
    }
}

@Suite struct PolicyDocumentCheckTests {
    @Test func aDocumentIsStoredOnlyUnderItsOwnVersion() throws {
        let text = Array("{ \"name\": \"n\", \"defaults\": {\"explicit\": \"deny\"} }".utf8)
        let version = try VersionedPolicy(document: text).version
        #expect(AuditPull.checkedDocument(text, version: version)?.name == "n")
        #expect(AuditPull.checkedDocument(text, version: SHA256.hex(text)) != nil, "old agents hashed the bytes")
        #expect(
            AuditPull.checkedDocument(Array(#"{"defaults":{"explicit":"allow"}}"#.utf8), version: version) == nil,
            "a host cannot pass off another document")
    }

    /// Addresses need no resolving (libcurl's DNS cache is switched off for them); names do.
    @Test func addressLiteralsAreToldFromNames() {
        for literal in [
            "http://127.1.2.3:7100", "https://10.0.0.1:8443/", "http://[::1]:80", "http://[fe80::1%25eth0]:80",
            "unix:///run/a.sock",
        ] {
            #expect(Endpoint(literal)?.isAddressLiteral == true, "\(literal)")
        }
        for name in [
            "http://agents.example:80", "http://localhost:7070", "http://256.1.1.1:80", "http://1.2.3:80",
            "http://1.2.3.4.5:80",
            "http://01234.1.1.1:80",
        ] {
            #expect(Endpoint(name)?.isAddressLiteral == false, "\(name)")
        }
    }
}
