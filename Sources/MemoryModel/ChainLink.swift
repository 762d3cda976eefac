import JSON

/// One link of an audit chain (docs/AUDIT-CHAIN.md), shared by the agent that writes the
/// chain and the controller that checks it. Pure.
public enum ChainLink {
    /// The value before the first row of a chain nobody pruned.
    public static let zero = [UInt8](repeating: 0, count: 32)

    /// The next value: SHA-256 of the previous value's 32 bytes followed by the row's canonical bytes.
    public static func link(_ previous: [UInt8], _ canonical: [UInt8]) -> [UInt8] {
        SHA256.digest(previous, canonical)
    }

    /// An API entry's canonical bytes: its JSON without `chain` and without the names joined in
    /// from other tables (`vm_name` of a VM event, `name` of a policy application), keys sorted.
    public static func canonical(entry: JSONValue) -> [UInt8] {
        guard case .object(let members) = entry else { return entry.canonical() }
        let joined: Set<String> = ["vm_name", "name"]
        let stripped = members.compactMap { member -> JSONValue.Member? in
            guard member.key != "chain" else { return nil }
            if member.key == "vm_event" || member.key == "policy_application", case .object(let inner) = member.value {
                return JSONValue.Member(key: member.key, value: .object(inner.filter { !joined.contains($0.key) }))
            }
            return member
        }
        return JSONValue.object(stripped).canonical()
    }
}
