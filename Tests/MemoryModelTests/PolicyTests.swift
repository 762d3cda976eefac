import Testing

@testable import MemoryModel

@Suite struct PolicyParsingTests {
    func parse(_ text: String) throws(PolicyError) -> Policy { try Policy.parse(Array(text.utf8)) }

    @Test func designExampleParses() throws {
        let policy = try parse(
            """
            { "defaults": { "explicit": "allow", "implicit": "allow", "discard": true },
              "rules": [
                { "match": { "vm": "tenant-a-*", "direction": "to_shared", "trigger": "implicit", "gpa": ["0x0", "0x100000"] },
                  "action": "deny", "reason": "no implicit sharing of low memory" } ],
              "limits": { "max_shared_bytes": 67108864, "max_conversions_per_second": 50000 } }
            """)
        #expect(policy.rules.count == 1)
        #expect(
            policy.rules[0].match
                == Policy.Match(
                    vm: "tenant-a-*", direction: .toShared, trigger: .implicit,
                    gpa: PageRange(start: 0, end: 0x10_0000)))
        #expect(policy.limits == Policy.Limits(maxSharedBytes: 64 << 20, maxConversionsPerSecond: 50000))
        #expect(try parse("{}") == Policy())
    }

    @Test(arguments: [
        ("[]", "$"),
        ("{\"default\": {}}", "default"),
        ("{\"defaults\": {\"explicit\": \"maybe\"}}", "defaults.explicit"),
        ("{\"defaults\": {\"discard\": 1}}", "defaults.discard"),
        ("{\"rules\": {}}", "rules"),
        ("{\"rules\": [{\"match\": {}}]}", "rules[0].action"),
        (
            "{\"rules\": [{\"action\": \"allow\"}, {\"action\": \"deny\", \"match\": {\"direction\": \"sideways\"}}]}",
            "rules[1].match.direction"
        ),
        ("{\"rules\": [{\"action\": \"deny\", \"match\": {\"trigger\": \"psychic\"}}]}", "rules[0].match.trigger"),
        ("{\"rules\": [{\"action\": \"deny\", \"match\": {\"gpa\": [\"0x100\"]}}]}", "rules[0].match.gpa"),
        ("{\"rules\": [{\"action\": \"deny\", \"match\": {\"gpa\": [\"0x100\", \"zz\"]}}]}", "rules[0].match.gpa[1]"),
        ("{\"rules\": [{\"action\": \"deny\", \"match\": {\"gpa\": [\"0x100\", \"0x10\"]}}]}", "rules[0].match.gpa"),
        ("{\"rules\": [{\"action\": \"deny\", \"match\": {\"vm\": \"\"}}]}", "rules[0].match.vm"),
        ("{\"rules\": [{\"action\": \"deny\", \"colour\": \"red\"}]}", "rules[0].colour"),
        ("{\"limits\": {\"max_shared_bytes\": -1}}", "limits.max_shared_bytes"),
        ("{\"limits\": {\"max_shared_bytes\": 1.5}}", "limits.max_shared_bytes"),
        ("{\"limits\": {\"max_conversions_per_second\": 0}}", "limits.max_conversions_per_second"),
        ("{\"limits\": {\"max_conversions_per_second\": true}}", "limits.max_conversions_per_second"),
        ("not json", "$"),
    ])
    func invalidDocumentsNameTheField(text: String, field: String) {
        #expect(throws: PolicyError.self) { try parse(text) }
        do {
            _ = try parse(text)
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }

    /// `JSONSerialization` keeps the last of two equal keys: a reviewer reading the first would be misled.
    @Test(arguments: [
        (#"{"defaults": {"explicit": "deny", "explicit": "allow"}}"#, "defaults.explicit"),
        (
            #"{"rules": [{"match": {}, "action": "deny"}, {"match": {"vm": "a", "vm": "b"}, "action": "deny"}]}"#,
            "rules[1].match.vm"
        ),
        (#"{"limits": {}, "limits": {}}"#, "limits"),
        (#"{"defaults": {"discard": true, "disc\u0061rd": false}}"#, "defaults.discard"),
    ])
    func duplicateKeysAreRefusedByName(document: String, field: String) {
        #expect(throws: PolicyError(field: field, message: "appears more than once in its object; say it once")) {
            try Policy.parse(Array(document.utf8))
        }
    }

    @Test func equalKeysInDifferentObjectsAreFine() throws {
        let policy = try Policy.parse(
            Array(
                #"{"rules": [{"match": {"vm": "a"}, "action": "deny"}, {"match": {"vm": "b"}, "action": "allow"}], "defaults": {"explicit": "allow"}}"#
                    .utf8))
        #expect(policy.rules.count == 2)
    }

    /// RFC 8259 and nothing else: what Foundation lets through is refused, naming where.
    @Test(arguments: [
        (#"{"defaults":{"explicit":"deny"},}"#, "$"),
        (#"{"defaults":{"explicit":"deny"} /* no */}"#, "$"),
        (#"{"limits":{"max_shared_bytes":NaN}}"#, "limits.max_shared_bytes"),
        (#"{"rules":[{"match":{},"action":"deny"},]}"#, "rules[1]"),
        (#"{"defaults":{'explicit':"deny"}}"#, "defaults"),
        (#"{"limits":{"max_shared_bytes":0x10}}"#, "limits"),
    ])
    func sloppyJSONIsRefusedWithItsPlace(document: String, field: String) {
        #expect { try Policy.parse(Array(document.utf8)) } throws: { error in
            guard let error = error as? PolicyError else { return false }
            return error.field == field && error.message.hasPrefix("not valid JSON")
        }
    }

    @Test func versionIsTheHashOfTheCanonicalForm() throws {
        let compact = try VersionedPolicy(
            document: Array(#"{"rules":[],"defaults":{"explicit":"deny","implicit":"allow"}}"#.utf8))
        let pretty = try VersionedPolicy(
            document: Array(
                """
                {
                  "defaults": { "implicit": "allow", "explicit": "\\u0064eny" },
                  "rules": [ ]
                }
                """.utf8))
        #expect(compact.version == pretty.version)
        #expect(
            compact.version
                == SHA256.hex(Array(#"{"defaults":{"explicit":"deny","implicit":"allow"},"rules":[]}"#.utf8)))
        let other = try VersionedPolicy(document: Array(#"{"defaults":{"explicit":"allow"}}"#.utf8))
        #expect(other.version != compact.version)
        #expect(pretty.document != compact.document, "the document is kept as written")
        #expect(VersionedPolicy.builtIn.policy.defaults == Policy.Defaults())
        #expect(VersionedPolicy.builtIn.policy.name == "built-in")
        #expect(VersionedPolicy.builtIn.version.count == 64)
    }

    @Test func nameAndLabelsAreChecked() throws {
        let policy = try Policy.parse(Array(#"{"name":"deny-implicit","labels":{"team":"infra"}}"#.utf8))
        #expect(policy.name == "deny-implicit")
        #expect(policy.labels == ["team": "infra"])
        #expect(throws: PolicyError.self) { try Policy.parse(Array(#"{"name":""}"#.utf8)) }
        #expect(throws: PolicyError.self) { try Policy.parse(Array(#"{"labels":{"a":1}}"#.utf8)) }
        #expect(throws: PolicyError.self) { try Policy.parse(Array(#"{"name":"a\u0007"}"#.utf8)) }
    }
}

@Suite struct PolicyEvaluationTests {
    let lowMemory = PageRange(start: 0x20_0000, size: 4096)
    func request(
        _ direction: ConversionDirection, _ trigger: ConversionTrigger, at start: UInt64 = 0x40_0000, pages: UInt64 = 1
    ) -> ConversionRequest {
        ConversionRequest(
            range: PageRange(start: start, size: pages * 4096), direction: direction, trigger: trigger, vcpu: 0)
    }

    func decide(_ policy: Policy, _ request: ConversionRequest, vm: String = "tenant-a-1", shared: UInt64 = 0)
        -> PolicyDecision
    {
        var limiter: RateLimiter? = nil
        return policy.evaluate(request, vm: vm, sharedBytesAfter: shared, nowNanos: 0, limiter: &limiter)
    }

    @Test func firstMatchingRuleWinsElseDefaults() {
        let policy = Policy(
            defaults: {
                var d = Policy.Defaults()
                d.implicit = .deny
                d.discard = false
                return d
            }(),
            rules: [
                Policy.Rule(
                    match: Policy.Match(
                        vm: "tenant-a-*", direction: .toShared, gpa: PageRange(start: 0, end: 0x30_0000)),
                    action: .deny, reason: "no sharing of low memory"),
                Policy.Rule(match: Policy.Match(vm: "tenant-?-1"), action: .allow, discard: true),
            ])
        let low = decide(policy, request(.toShared, .explicit, at: 0x2F_F000, pages: 2))
        #expect(!low.allowed && low.reason == "no sharing of low memory" && low.ruleIndex == 0)
        let high = decide(policy, request(.toShared, .implicit))
        #expect(high.allowed && high.ruleIndex == 1 && high.discard)
        let other = decide(policy, request(.toPrivate, .implicit), vm: "tenant-b-22")
        #expect(!other.allowed && other.ruleIndex == nil && other.reason == "default implicit deny")
        let explicitDefault = decide(policy, request(.toPrivate, .explicit), vm: "other")
        #expect(explicitDefault.allowed && !explicitDefault.discard)
    }

    /// A rule that allows without saying `discard` takes the defaults' (false here), not true.
    @Test func anAllowRuleWithoutDiscardTakesTheDefault() {
        let policy = Policy(
            defaults: {
                var d = Policy.Defaults()
                d.discard = false
                return d
            }(),
            rules: [Policy.Rule(match: Policy.Match(vm: "keep-*"), action: .allow)])
        let kept = decide(policy, request(.toShared, .explicit), vm: "keep-1")
        #expect(kept.allowed && kept.ruleIndex == 0 && !kept.discard)
        let parsed = try? Policy.parse(
            Array(#"{"defaults":{"discard":false},"rules":[{"match":{"vm":"keep-*"},"action":"allow"}]}"#.utf8))
        #expect(parsed.map { decide($0, request(.toShared, .explicit), vm: "keep-1").discard } == false)
    }

    /// A rule's GPA range ends before its `end`: a request starting there is outside it
    /// (pinned here, so a host without /dev/kvm catches an inclusive end too).
    @Test func aRulesRangeExcludesItsEnd() {
        let policy = Policy(rules: [
            Policy.Rule(match: Policy.Match(gpa: PageRange(start: 0x40_0000, end: 0x40_2000)), action: .deny)
        ])
        #expect(!decide(policy, request(.toShared, .explicit, at: 0x40_1000)).allowed, "the last page inside")
        #expect(decide(policy, request(.toShared, .explicit, at: 0x40_2000)).allowed, "the first page past the end")
        #expect(decide(policy, request(.toShared, .explicit, at: 0x3F_F000)).allowed, "the page before the start")
        #expect(
            !decide(policy, request(.toShared, .explicit, at: 0x3F_F000, pages: 2)).allowed,
            "a request reaching into it")
        // The same range as a document writes it, [start, end] with the end exclusive.
        let parsed = try? Policy.parse(Array(#"{"rules":[{"match":{"gpa":[4194304,4202496]},"action":"deny"}]}"#.utf8))
        #expect(parsed.map { decide($0, request(.toShared, .explicit, at: 0x40_2000)).allowed } == true)
        #expect(parsed.map { decide($0, request(.toShared, .explicit, at: 0x40_1000)).allowed } == false)
    }

    @Test func sharedBytesLimitOnlyLimitsSharing() {
        let policy = Policy(limits: Policy.Limits(maxSharedBytes: 8192))
        #expect(decide(policy, request(.toShared, .explicit), shared: 8192).allowed)
        let over = decide(policy, request(.toShared, .explicit), shared: 8193)
        #expect(!over.allowed && over.reason.contains("max_shared_bytes"))
        #expect(decide(policy, request(.toPrivate, .explicit), shared: 1 << 30).allowed)
    }

    @Test func rateLimitRefillsOverTime() {
        let policy = Policy(limits: Policy.Limits(maxConversionsPerSecond: 3))
        var limiter: RateLimiter? = RateLimiter(perSecond: 3)
        let r = request(.toShared, .explicit)
        let burst = (0..<4).map { _ in
            policy.evaluate(r, vm: "v", sharedBytesAfter: 0, nowNanos: 1_000, limiter: &limiter).allowed
        }
        #expect(burst == [true, true, true, false])
        let denied = policy.evaluate(r, vm: "v", sharedBytesAfter: 0, nowNanos: 2_000, limiter: &limiter)
        #expect(!denied.allowed && denied.reason.contains("max_conversions_per_second 3"))
        // A third of a second later one token is back.
        #expect(policy.evaluate(r, vm: "v", sharedBytesAfter: 0, nowNanos: 340_000_000, limiter: &limiter).allowed)
        #expect(!policy.evaluate(r, vm: "v", sharedBytesAfter: 0, nowNanos: 340_000_001, limiter: &limiter).allowed)
    }

    @Test func globs() {
        #expect(Glob.matches("tenant-a-*", "tenant-a-17"))
        #expect(Glob.matches("*", ""))
        #expect(Glob.matches("a*b*c", "aXXbYYc"))
        #expect(Glob.matches("vm-?", "vm-1"))
        #expect(!Glob.matches("vm-?", "vm-12"))
        #expect(!Glob.matches("tenant-a-*", "tenant-b-1"))
        #expect(!Glob.matches("a*c", "abcd"))
    }

    @Test func sha256KnownVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1000)).hasPrefix("41edece42d63e8d9bf515a9ba6932e1c"))
    }
}

/// The hasher is incremental: any split of a message gives the one-shot digest.
@Test func sha256OfSplitMessagesEqualsTheWhole() {
    let message = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    for length in [0, 1, 55, 56, 63, 64, 65, 119, 128, 300] {
        let whole = SHA256.digest(Array(message.prefix(length)))
        for split in stride(from: 0, through: length, by: max(1, length / 7)) {
            #expect(
                SHA256.digest(Array(message.prefix(split)), Array(message[split..<length])) == whole,
                "\(length) split at \(split)")
        }
    }
}
