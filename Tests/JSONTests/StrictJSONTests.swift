import JSON
import Testing

@Suite struct StrictJSONTests {
    func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue { try StrictJSON.parse(Array(text.utf8)) }

    @Test func readsEveryKindOfValue() throws {
        let value = try parse(#" {"a": [1, -0.5e+3, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"} "#)
        #expect(value["a"] == .array([.number("1"), .number("-0.5e+3"), .bool(true), .bool(false), .null]))
        #expect(value["b"] == .string("x\"\\/\u{8}\u{c}\n\r\té😀"))
    }

    @Test(arguments: [
        #"{"a":1,}"#, "[1,]", #"{"a":1 /* c */}"#, "// c\n{}", #"{"a":NaN}"#, #"{"a":Infinity}"#, "{'a':1}",
        #"{"a":01}"#, #"{"a":1.}"#, #"{"a":.5}"#, #"{"a":1e}"#, #"{"a":+1}"#, #"{"a":0x10}"#,
        "\u{FEFF}{}", "{\"a\":\"\u{1}\"}", #"{"a":"\ud800"}"#, #"{"a":"\udc00x"}"#, #"{"a":"\x41"}"#,
        #"{"a":tru}"#, #"{"a" 1}"#, #"{"a":1} {}"#, "", "   ", #"{"a":"open"#, #"["#, #"{"a":1,"a":2}"#,
    ])
    func refusesWhatRFC8259Does(text: String) {
        #expect(throws: JSONSyntaxError.self) { try parse(text) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONSyntaxError.self) { try StrictJSON.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONSyntaxError.self) { try StrictJSON.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }
    }

    @Test func namesTheDuplicateKeyAndWhere() {
        #expect { try parse(#"{"rules":[{"match":{"vm":"a","vm":"b"}}]}"#) } throws: { error in
            let error = error as? JSONSyntaxError
            return error?.kind == .duplicateKey && error?.path == "rules[0].match.vm"
        }
        // Escapes are compared after decoding: "\u0061" is "a".
        #expect(throws: JSONSyntaxError.self) { try parse(#"{"a":1,"\u0061":2}"#) }
    }

    @Test func boundsNestingWithoutRecursingForever() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect { try parse(deep) } throws: { ($0 as? JSONSyntaxError)?.kind == .tooDeep }
        let fine =
            String(repeating: "[", count: StrictJSON.maxDepth) + String(repeating: "]", count: StrictJSON.maxDepth)
        _ = try parse(fine)
    }

    @Test func canonicalFormSortsKeysAndDropsFormatting() throws {
        let a = try parse(#"{ "b" : [ 1 , {"y":null,"x":"\u0041\n"} ], "a":true }"#)
        #expect(String(decoding: a.canonical(), as: UTF8.self) == #"{"a":true,"b":[1,{"x":"A\n","y":null}]}"#)
        let b = try parse(String(decoding: a.canonical(), as: UTF8.self))
        #expect(b.canonical() == a.canonical())
        #expect(a.pretty().contains("\n  \"a\": true"))
        #expect(try parse(a.pretty()).canonical() == a.canonical())
    }

    /// Paths are built only for an error: a long key above a long array costs the key once, not once
    /// per element (1 MiB key x 200,000 elements was 200 GB of copying; now it is one linear pass).
    /// The time limit only ends a regression; the parse takes well under a second.
    @Test(.timeLimit(.minutes(1))) func aLongKeyAboveALongArrayIsLinear() throws {
        let key = String(repeating: "k", count: 1 << 20)
        let document = "{\"\(key)\":[" + Array(repeating: "1", count: 200_000).joined(separator: ",") + "]}"
        guard case .object(let members) = try parse(document), case .array(let elements)? = members.first?.value else {
            Issue.record("not an object holding an array")
            return
        }
        #expect(elements.count == 200_000)
        // The error path still names where: the key and the element.
        let broken = "{\"rules\":[1,2,{\"a\":[true,nul]}]}"
        #expect { try parse(broken) } throws: { ($0 as? JSONSyntaxError)?.path == "rules[2].a[1]" }
        #expect { try parse("[1,[2,x]]") } throws: { ($0 as? JSONSyntaxError)?.path == "$[1][1]" }
    }

    /// A caller's deadline ends a parse between values, with a kind of its own.
    @Test func anInterruptEndsTheParse() throws {
        let document = Array(
            ("[" + Array(repeating: "1", count: 3 * StrictJSON.interruptStride).joined(separator: ",") + "]").utf8)
        var looks = 0
        #expect {
            try StrictJSON.parse(
                document,
                interrupt: {
                    looks += 1
                    return true
                })
        } throws: {
            ($0 as? JSONSyntaxError)?.kind == .interrupted
        }
        #expect(looks == 1)
        _ = try StrictJSON.parse(document, interrupt: { false })
    }
}
