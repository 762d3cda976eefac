import APITypes
import Foundation
import MemoryModel
import VMM

/// What `GET /v1/host` reports that does not change while the agent runs.
public struct HostSnapshot: Sendable {
    public static let agentVersion = BuildInfo.version
    public let report: HostReport
    public let hostname: String
    public let startedAt: Date

    public init(report: HostReport, hostname: String = ProcessInfo.processInfo.hostName, startedAt: Date = Date()) {
        self.report = report
        self.hostname = hostname
        self.startedAt = startedAt
    }

    func info(vms: [String: Int], policy: VersionedPolicy) -> HostInfo {
        var info = HostInfo(
            version: Self.agentVersion, hostname: hostname, kernel: report.kernel,
            capabilities: report.capabilities.system.mapValues { Int($0) },
            backends: report.backends.map { .init(name: $0.name.rawValue, usable: $0.usable, reason: $0.reason) },
            hypercallProbe: .init(
                outcome: report.hypercallProbe.outcome.rawValue, detail: report.hypercallProbe.detail),
            conversionTransport: report.conversionTransport.description,
            aliasMechanism: .init(
                chosen: report.aliasMechanism.rawValue,
                overridden: report.aliasMechanism != report.aliasProbe.mechanism,
                probeOutcome: report.aliasProbe.outcome.rawValue, probeDetail: report.aliasProbe.detail),
            uptimeSeconds: Date().timeIntervalSince(startedAt), vms: vms, policyVersion: policy.version)
        info.policyName = policy.policy.name
        info.hiddenCapabilities = report.capabilities.hidden.isEmpty ? nil : report.capabilities.hidden
        return info
    }
}
