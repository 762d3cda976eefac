import CLinux
import Foundation
import Glibc

/// A VM process's own cgroup (v2), where the host's cgroup tree is writable:
/// `<root>/memgate/vm-ID` with `memory.max` = guest RAM + `overheadBytes` (the process's
/// heap, stacks, page-state maps and ring), so a VM that leaks host memory is stopped by
/// the kernel before it hurts another. Where cgroup v2 is not mounted or not writable,
/// the VM runs without one and `caps` says why.
public struct CgroupPlacement: Sendable, Equatable {
    /// What a VM process needs beyond its guest RAM: runtime, threads, maps, ring, log buffers.
    public static let overheadBytes: UInt64 = 256 << 20
    public let root: String

    public init(root: String = "/sys/fs/cgroup") { self.root = root }

    /// The limit for a VM of `memoryBytes` and a ring of `ringBytes`. Pure.
    public static func memoryMax(memoryBytes: UInt64, ringBytes: Int) -> UInt64 {
        let (sum, overflow) = memoryBytes.addingReportingOverflow(overheadBytes + UInt64(max(ringBytes, 0)))
        return overflow ? .max : sum
    }

    public func directory(vmID: Int64) -> String { "\(root)/memgate/vm-\(vmID)" }

    /// nil when VM processes can get cgroups here; else why not.
    public var unavailableReason: String? {
        guard FileManager.default.fileExists(atPath: root + "/cgroup.controllers") else {
            return "cgroup v2 is not mounted at \(root) (this host uses cgroup v1 or none)"
        }
        let controllers = (try? String(contentsOfFile: root + "/cgroup.controllers", encoding: .utf8)) ?? ""
        guard
            controllers.split(separator: " ").contains(where: {
                $0.trimmingCharacters(in: .whitespacesAndNewlines) == "memory"
            })
        else {
            return "the memory controller is not available in \(root)"
        }
        // Safety: access(2) on a path string.
        guard access(root, W_OK) == 0 else { return "\(root) is not writable by this user" }
        return nil
    }

    /// Moves the calling process into its VM's cgroup with its memory limit; returns what it did, or why not.
    public func placeSelf(vmID: Int64, memoryMax: UInt64) -> String {
        if let reason = unavailableReason { return "no cgroup: \(reason)" }
        let parent = root + "/memgate"
        // Safety: mkdir and small writes to cgroup files by path; every result checked.
        _ = mkdir(parent, 0o755)
        guard write("+memory", to: root + "/cgroup.subtree_control"),
            write("+memory", to: parent + "/cgroup.subtree_control")
        else {
            return "no cgroup: could not enable the memory controller under \(parent)"
        }
        let directory = directory(vmID: vmID)
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            return "no cgroup: mkdir \(directory): \(String(cString: strerror(errno)))"
        }
        guard write("\(memoryMax)", to: directory + "/memory.max"),
            write("\(getpid())", to: directory + "/cgroup.procs")
        else {
            rmdir(directory)
            return "no cgroup: could not set \(directory)/memory.max or join it"
        }
        return "cgroup \(directory), memory.max \(memoryMax)"
    }

    /// Removes an ended VM's cgroup (the kernel refuses while a process is in it).
    public func remove(vmID: Int64) { rmdir(directory(vmID: vmID)) }

    private func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}

extension VMProcessServer {
    /// Drops what the VM process does not need once KVM is set up: no new privileges, then
    /// the seccomp filter. Returns what is in force, for its log and `caps`.
    public func confine() -> [String] {
        var inForce: [String] = []
        // Safety: prctl and seccomp(2) through the C shim; results checked.
        if clinux_no_new_privs() == 0 { inForce.append("no_new_privs") }
        inForce.append(
            VMProcessSeccomp.install()
                ? "seccomp (\(VMProcessSeccomp.allowed.count) syscalls; others fail with EPERM)"
                : "no seccomp: \(String(cString: strerror(errno)))")
        return inForce
    }
}
