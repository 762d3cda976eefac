import CLinux
import Glibc

/// The system calls a VM process may make once its VM is built (`docs/VM-PROCESS.md`):
/// running vCPUs (ioctl on KVM descriptors, signals to kick them), changing guest memory
/// (mmap, mprotect, madvise, fallocate), threads and their locks, its socket, its log and
/// the clock. Everything else — opening files, exec, new sockets, ptrace, mounts — fails
/// with EPERM: the call's caller reports it, the VM goes on, and nothing it asked is done.
enum VMProcessSeccomp {
    /// The filter compares in this order: the calls of every conversion come first.
    static let allowed: [Int32] = [
        // every conversion: KVM_RUN, the alias backend's protection changes and discards
        SYS_ioctl, SYS_mprotect, SYS_madvise, SYS_fallocate, SYS_futex,
        // memory: guest RAM, the heap, thread stacks
        SYS_mmap, SYS_munmap, SYS_mremap, SYS_brk,
        // descriptors already open
        SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_close, SYS_fstat,
        SYS_newfstatat, SYS_lseek, SYS_fcntl, SYS_dup, SYS_dup2, SYS_dup3,
        // threads, their locks and signals (vCPU kicks are signals to a thread)
        SYS_clone, SYS_clone3, SYS_set_robust_list, SYS_get_robust_list, SYS_rseq, SYS_exit, SYS_exit_group,
        SYS_rt_sigprocmask, SYS_rt_sigaction, SYS_rt_sigreturn, SYS_sigaltstack, SYS_tgkill, SYS_tkill, SYS_gettid,
        SYS_getpid, SYS_prctl, SYS_sched_yield, SYS_sched_getaffinity, SYS_restart_syscall, SYS_membarrier,
        // time
        SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_gettimeofday,
        // its socket: accept, messages, credentials, timeouts; its socket file at the end
        SYS_poll, SYS_ppoll, SYS_accept, SYS_accept4, SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg,
        SYS_getsockopt,
        SYS_setsockopt, SYS_shutdown, SYS_unlink,
        // what the runtime asks of the system
        SYS_getrandom, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_uname, SYS_getrlimit, SYS_prlimit64,
    ].map { Int32($0) }

    /// Installs the filter on every thread; false (and errno) where the kernel refuses it.
    static func install() -> Bool {
        allowed.withUnsafeBufferPointer { clinux_seccomp_allow($0.baseAddress, Int32($0.count), EPERM) == 0 }
    }
}

/// What `caps` reports of a VM process's confinement.
public enum VMProcessConfinement {
    /// How many system calls a VM process may make once its VM is built.
    public static var allowedSystemCalls: Int { VMProcessSeccomp.allowed.count }
}
