import Foundation
import TestSupport
import Testing

/// scripts/preflight.sh, make check's first step: one line naming what a host lacks, at once.
struct PreflightTests {
    static let script = TestSupport.packageRoot.appendingPathComponent("scripts/preflight.sh").path

    func preflight(_ environment: [String: String?]) throws -> TestSupport.ProcessResult {
        try TestSupport.run("/bin/bash", [Self.script], environment: environment)
    }

    @Test func aMissingDeviceIsNamedWithTheModuleThatBringsIt() throws {
        let result = try preflight(["KVM_DEVICE": "/nonexistent/kvm"])
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(
            result.stderr.contains("/nonexistent/kvm is missing")
                && result.stderr.contains("modprobe kvm_intel or kvm_amd"))
    }

    @Test func aDeviceThatIsNotKVMIsRefused() throws {
        let notADevice = try preflight(["KVM_DEVICE": Self.script])
        #expect(
            notADevice.status == 1 && notADevice.stderr.contains("is not a character device"), "\(notADevice.stderr)")
        let otherDevice = try preflight(["KVM_DEVICE": "/dev/null"])
        #expect(
            otherDevice.status == 1
                && otherDevice.stderr.contains("is not the KVM device node (char 10:232) but 0x1:0x3"),
            "\(otherDevice.stderr)")
    }

    // The QEMU check comes after the device checks, so it needs a usable /dev/kvm.
    @Test(
        .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host, to reach the QEMU check"))
    func aMissingQEMUStopsOnlyAHostThatCannotInstallIt() throws {
        let cannot = try preflight(["QEMU_SYSTEM": "no-such-qemu-system", "MEMGATE_PREFLIGHT_CAN_INSTALL": "0"])
        #expect(cannot.status == 1 && cannot.stderr.contains("apt package qemu-system-x86"), "\(cannot.stderr)")
        let can = try preflight(["QEMU_SYSTEM": "no-such-qemu-system", "MEMGATE_PREFLIGHT_CAN_INSTALL": "1"])
        #expect(can.status == 0, "make deps installs it: \(can.stderr)")
    }

    /// A read-only /dev/kvm: a KVM node of mode 0644, checked by a user other than its owner.
    @Test(.enabled(if: getuid() == 0, "making a KVM node (mknod) and checking it as another user (setpriv) needs root"))
    func aReadOnlyDeviceIsNamedWithTheGroupThatOpensIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-preflight-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = directory + "/kvm"
        #expect(try TestSupport.run("/bin/mknod", ["-m", "0644", node, "c", "10", "232"]).status == 0)
        // The other user may not reach the checkout (a clone under a 0700 mktemp folder): it runs a copy beside the node.
        let script = directory + "/preflight.sh"
        try FileManager.default.copyItem(atPath: Self.script, toPath: script)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let result = try TestSupport.run(
            "/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", script],
            environment: ["KVM_DEVICE": node])
        #expect(result.status == 1)
        #expect(
            result.stderr.contains("cannot be opened read-write") && result.stderr.contains("group kvm"),
            "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
    }
}
