import Controller
import Testing

@Suite struct LabelSelectorTests {
    let a = ["tenant": "a", "canary": "yes"]
    let b = ["tenant": "b"]
    let none: [String: String] = [:]

    @Test func requirementsAsKubectlReadsThem() throws {
        #expect(try LabelSelector("tenant=a").matches(a) && !LabelSelector("tenant=a").matches(b))
        #expect(try LabelSelector("tenant==b").matches(b))
        #expect(
            try LabelSelector("tenant!=a").matches(b) && LabelSelector("tenant!=a").matches(none)
                && !LabelSelector("tenant!=a").matches(a))
        #expect(
            try LabelSelector("tenant in (a, b)").matches(a) && LabelSelector("tenant in (a,b)").matches(b)
                && !LabelSelector("tenant in (a,b)").matches(none))
        #expect(
            try LabelSelector("tenant notin (a)").matches(b) && LabelSelector("tenant notin (a)").matches(none)
                && !LabelSelector("tenant notin (a)").matches(a))
        #expect(try LabelSelector("canary").matches(a) && !LabelSelector("canary").matches(b))
        #expect(try LabelSelector("!canary").matches(b) && !LabelSelector("!canary").matches(a))
        // Commas join requirements, except inside a list.
        #expect(
            try LabelSelector("tenant in (a,b),!canary").matches(b)
                && !LabelSelector("tenant in (a,b),!canary").matches(a))
        #expect(try LabelSelector("tenant in (a,b),!canary").requirements.count == 2)
    }

    @Test(arguments: [
        "", "tenant=a,", ",x", "tenant in a,b", "tenant in (a,", "tenant in ()", "a=b=c", "=x", "!", "ten ant=x", "x)",
    ])
    func malformedSelectorsAreRefused(text: String) {
        #expect(throws: LabelSelector.SyntaxError.self) { try LabelSelector(text) }
    }
}
