import Foundation
import TestSupport

/// Agents on a network of their own: a bridge in this namespace and one network namespace
/// per agent, joined to the bridge by a veth pair (10.215.S.1 here, 10.215.S.10+i there).
/// Needs root; everything it made is removed by `close()`.
final class NetworkLab {
    let tag: String
    let subnet: Int
    let count: Int
    private(set) var agents: [AgentProcess] = []
    private var closed = false

    var bridge: String { "mgbr\(tag)" }
    func namespace(_ index: Int) -> String { "mgrl\(tag)n\(index)" }
    /// The host side of an agent's veth (taking it down cuts the agent off).
    func link(_ index: Int) -> String { "mgv\(tag)h\(index)" }
    func address(_ index: Int) -> String { "10.215.\(subnet).\(10 + index)" }
    func url(_ index: Int) -> String { "http://\(address(index)):\(agents[index].port)" }

    init(agents count: Int, extraArguments: [String] = []) throws {
        tag = String(getpid() % 10_000)
        subnet = 1 + Int(getpid() % 250)
        self.count = count
        var script = """
            set -e
            ip link add \(bridge) type bridge
            ip addr add 10.215.\(subnet).1/24 dev \(bridge)
            ip link set \(bridge) up

            """
        for index in 0..<count {
            let inside = "mgv\(tag)n\(index)"
            script += """
                ip netns add \(namespace(index))
                ip link add \(link(index)) type veth peer name \(inside)
                ip link set \(inside) netns \(namespace(index))
                ip link set \(link(index)) master \(bridge)
                ip link set \(link(index)) up
                ip netns exec \(namespace(index)) ip addr add \(address(index))/24 dev \(inside)
                ip netns exec \(namespace(index)) ip link set \(inside) up
                ip netns exec \(namespace(index)) ip link set lo up

                """
        }
        let setup = try shell(script)
        guard setup.status == 0 else {
            close()
            throw TestSupport.MissingArtifact(path: "network namespaces", hint: setup.stderr)
        }
        do {
            for index in 0..<count {
                agents.append(
                    try AgentProcess(
                        extraArguments: extraArguments, listen: "\(address(index)):0",
                        launcher: ["/usr/sbin/ip", "netns", "exec", namespace(index)]))
            }
        } catch {
            close()
            throw error
        }
    }

    /// A hosts file naming agent i `a<i>`, with `labels(i)`.
    func hostsFile(labels: (Int) -> String = { _ in "" }) throws -> String {
        try MemgatectlTests.hostsFile((0..<count).map { "\(url($0)) a\($0) \(labels($0))" })
    }

    /// One request to agent i over its Unix socket (which reaches across namespaces and needs no token).
    func request(
        _ index: Int, _ method: String, _ path: String, json: String? = nil,
        headers: [String: String] = [:]
    ) throws -> BlockingHTTPClient.Response {
        var all = headers
        if json != nil { all["Content-Type"] = "application/json" }
        return try BlockingHTTPClient(unixPath: agents[index].socket, timeoutMilliseconds: 30_000)
            .request(method, path, headers: all, body: Array((json ?? "").utf8))
    }

    /// The name of the policy agent i has in force.
    func policyName(_ index: Int) -> String? {
        ((try? JSONSerialization.jsonObject(with: Data((try? request(index, "GET", "/v1/policy"))?.body ?? [])))
            as? [String: Any])?["name"] as? String
    }

    /// Polls agent i until VM `vm` has ended (and so is recorded); false after a minute.
    func waitForEnd(_ index: Int, vm: Int) -> Bool {
        let deadline = Date(timeIntervalSinceNow: 60)
        while Date() < deadline {
            let answer = (try? request(index, "GET", "/v1/vms/\(vm)"))?.body ?? []
            if let ended = ((try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any])?["ended_ns"],
                !(ended is NSNull)
            {
                return true
            }
            usleep(20_000)
        }
        return false
    }

    func cut(_ index: Int) throws {
        try shell("ip link set \(link(index)) down")
    }

    /// Puts a cut host back on the network.
    func mend(_ index: Int) throws {
        try shell("ip link set \(link(index)) up")
    }

    func close() {
        guard !closed else { return }
        closed = true
        for agent in agents {
            agent.terminate()
            agent.removeFiles()
        }
        _ = try? shell(
            (0..<count).map { "ip netns del \(namespace($0)) 2>/dev/null" }.joined(separator: "; ")
                + "; ip link del \(bridge) 2>/dev/null; true")
    }

    deinit {
        close()
    }
}
