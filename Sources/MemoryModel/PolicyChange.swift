/// Who and what made a policy change: the principal (a token's name, or a session), the
/// channel it came through, the rollout it belongs to, and the request's Idempotency-Key.
/// Pure; the channel a client names is checked by `PolicyChange.channel(parsing:)`.
public struct PolicyChange: Sendable, Equatable {
    public var principal: String?
    /// `api`, `--policy FILE`, `rollout ID wave N`, `rollback of rollout ID`, `built-in`, or `restored`.
    public var channel: String
    public var rolloutID: String?
    public var idempotencyKey: String?

    public init(principal: String?, channel: String, rolloutID: String? = nil, idempotencyKey: String? = nil) {
        self.principal = principal
        self.channel = channel
        self.rolloutID = rolloutID
        self.idempotencyKey = idempotencyKey
    }

    /// The one-line summary kept in `applied_by` (what older readers show): `api: alice`, `rollout 3 wave 2: alice`,
    /// `serve --policy /etc/memgate/policy.json` (the principal of a local start is in its own column).
    public var appliedBy: String {
        guard let principal, channel == "api" || rolloutID != nil else { return channel }
        return "\(channel): \(principal)"
    }

    /// A change through the API by `principal`, on the channel its `MemGate-Change` header named (nil: plain `api`).
    public static func api(principal: String, channel: String?, idempotencyKey: String?) throws(ChannelError)
        -> PolicyChange
    {
        guard let channel else {
            return PolicyChange(principal: principal, channel: "api", idempotencyKey: idempotencyKey)
        }
        let (name, rollout) = try Self.channel(parsing: channel)
        return PolicyChange(principal: principal, channel: name, rolloutID: rollout, idempotencyKey: idempotencyKey)
    }

    public struct ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// `api`, `rollout ID wave N` or `rollback of rollout ID` (ID: 1-64 of A-Z a-z 0-9 . _ -; N: the wave as the rollout numbers it, from 0),
    /// with the rollout's id; anything else is refused.
    public static func channel(parsing text: String) throws(ChannelError) -> (channel: String, rollout: String?) {
        let words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        func isID(_ word: String) -> Bool {
            (1...64).contains(word.utf8.count)
                && word.utf8.allSatisfy { byte in
                    (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                        || byte == 0x2E || byte == 0x5F || byte == 0x2D
                }
        }
        if words == ["api"] { return ("api", nil) }
        if words.count == 4, words[0] == "rollout", isID(words[1]), words[2] == "wave", let wave = Int(words[3]),
            (0...999_999).contains(wave),
            String(wave) == words[3]
        {
            return (text, words[1])
        }
        if words.count == 4, words[0] == "rollback", words[1] == "of", words[2] == "rollout", isID(words[3]) {
            return (text, words[3])
        }
        throw ChannelError(
            description:
                "MemGate-Change must be `api`, `rollout ID wave N` or `rollback of rollout ID` (ID: letters, digits, . _ -), not \(text.prefix(80))"
        )
    }
}
