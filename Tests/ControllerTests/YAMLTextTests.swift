import Controller
import JSON
import Testing

@Suite struct YAMLTextTests {
    @Test func blockStyleWithQuotesWhereYAMLWouldMisread() throws {
        let document = try StrictJSON.parse(
            Array(
                #"{"items":[{"name":"a","labels":{"tier":"a: b"},"n":1,"on":"yes"},{"name":"","list":[],"o":{}}],"v":null}"#
                    .utf8))
        #expect(
            YAMLText.render(document) == """
                items:
                - name: a
                  labels:
                    tier: "a: b"
                  n: 1
                  "on": "yes"
                - name: ""
                  list: []
                  o: {}
                v: null
                """)
    }
}
