import JSON

/// memgatectl's config file (`$MEMGATE_CONFIG`, else `~/.config/memgate/config.json`):
/// named contexts, each a fleet and how to reach it, like kubeconfig's.
///
///     {"current_context": "prod",
///      "contexts": {"prod": {"hosts": "/etc/memgate/prod.hosts", "token_file": "/root/.memgate/prod.token",
///                            "select": ["env=prod"], "ca_file": "...", "client_cert": "...", "client_key": "..."}}}
///
/// Flags win over the environment (`MEMGATE_HOSTS`, `MEMGATE_TOKEN`), which wins over the
/// context. Strict JSON; unknown fields are refused by name. Pure.
public struct ContextConfig: Sendable, Equatable {
    public struct Context: Sendable, Equatable {
        public var hosts: String?
        public var tokenFile: String?
        public var select: [String] = []
        public var caFile: String?
        public var clientCert: String?
        public var clientKey: String?
        public init() {}
    }

    public var currentContext: String?
    public var contexts: [String: Context] = [:]

    public init() {}

    public init(bytes: [UInt8], path: String) throws(InventoryError) {
        func fail(_ message: String) -> InventoryError { InventoryError(message: "config \(path): \(message)") }
        let root: JSONValue
        do {
            root = try StrictJSON.parse(bytes)
        } catch {
            throw fail("not valid JSON: \(error)")
        }
        guard case .object(let members) = root else { throw fail("must be a JSON object") }
        for member in members {
            switch (member.key, member.value) {
            case ("current_context", .string(let name)): currentContext = name
            case ("contexts", .object(let named)):
                for entry in named {
                    guard case .object(let fields) = entry.value else {
                        throw fail("contexts.\(entry.key) must be an object")
                    }
                    var context = Context()
                    for field in fields {
                        let at = "contexts.\(entry.key).\(field.key)"
                        switch (field.key, field.value) {
                        case ("hosts", .string(let text)): context.hosts = text
                        case ("token_file", .string(let text)): context.tokenFile = text
                        case ("ca_file", .string(let text)): context.caFile = text
                        case ("client_cert", .string(let text)): context.clientCert = text
                        case ("client_key", .string(let text)): context.clientKey = text
                        case ("select", .array(let items)):
                            for item in items {
                                guard case .string(let selector) = item else {
                                    throw fail("\(at) must be an array of label=value strings")
                                }
                                context.select.append(selector)
                            }
                        case ("hosts", _), ("token_file", _), ("ca_file", _), ("client_cert", _), ("client_key", _),
                            ("select", _):
                            throw fail("\(at) has the wrong type")
                        default:
                            throw fail(
                                "\(at): unknown field (allowed: hosts, token_file, select, ca_file, client_cert, client_key)"
                            )
                        }
                    }
                    contexts[entry.key] = context
                }
            case ("current_context", _), ("contexts", _):
                throw fail("\(member.key) has the wrong type")
            default:
                throw fail("\(member.key): unknown field (allowed: current_context, contexts)")
            }
        }
        if let currentContext, contexts[currentContext] == nil {
            throw fail("current_context \(currentContext) is not among the contexts")
        }
    }

    /// The context to use: `name` if given (it must exist), else the current one, else none.
    public func context(_ name: String?) throws(InventoryError) -> Context? {
        if let name {
            guard let context = contexts[name] else {
                throw InventoryError(
                    message: "no context \(name) (the config has \(contexts.keys.sorted().joined(separator: ", ")))")
            }
            return context
        }
        return currentContext.flatMap { contexts[$0] }
    }

    /// The file as `config set-context` and `use-context` write it: the same fields, keys sorted, two-space indents.
    public func rendered() -> String {
        func string(_ key: String, _ value: String?) -> JSONValue.Member? {
            value.map { JSONValue.Member(key: key, value: .string($0)) }
        }
        let named = contexts.keys.sorted().map { name -> JSONValue.Member in
            let context = contexts[name] ?? Context()
            var fields = [
                string("hosts", context.hosts), string("token_file", context.tokenFile),
                string("ca_file", context.caFile),
                string("client_cert", context.clientCert), string("client_key", context.clientKey),
            ].compactMap { $0 }
            if !context.select.isEmpty {
                fields.append(JSONValue.Member(key: "select", value: .array(context.select.map(JSONValue.string))))
            }
            return JSONValue.Member(key: name, value: .object(fields))
        }
        var root = [JSONValue.Member(key: "contexts", value: .object(named))]
        if let currentContext { root.append(JSONValue.Member(key: "current_context", value: .string(currentContext))) }
        return JSONValue.object(root).pretty() + "\n"
    }
}
