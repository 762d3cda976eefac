#define _GNU_SOURCE
#include "clinux.h"
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

extern char **environ;

int clinux_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int clinux_punch_hole(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

int clinux_allocate(int fd, int64_t offset, int64_t length) { return fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length); }

int clinux_madvise_dontneed(void *addr, uint64_t length) { return madvise(addr, length, MADV_DONTNEED); }
int clinux_madvise_remove(void *addr, uint64_t length) { return madvise(addr, length, MADV_REMOVE); }

uint64_t clinux_pthread_self(void) { return (uint64_t)pthread_self(); }
int clinux_pthread_kill(uint64_t thread, int signo) { return pthread_kill((pthread_t)thread, signo); }

long clinux_getdents64(int fd, void *buffer, size_t length) { return syscall(SYS_getdents64, fd, buffer, length); }
int clinux_malloc_trim(void) { return malloc_trim(0); }

int clinux_spawn_session(const char *path, char *const argv[], const int *fds, int fd_count, int *pid_out) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t none, defaults;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    result = posix_spawnattr_init(&attributes);
    if (result != 0) { posix_spawn_file_actions_destroy(&actions); return result; }
    for (int index = 0; index < fd_count && result == 0; index++)
        result = posix_spawn_file_actions_adddup2(&actions, fds[index], index);
    if (result == 0) result = posix_spawn_file_actions_addclosefrom_np(&actions, fd_count);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    if (result == 0) result = posix_spawnattr_setsigmask(&attributes, &none);
    if (result == 0) result = posix_spawnattr_setsigdefault(&attributes, &defaults);
    if (result == 0) result = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    if (result == 0) result = posix_spawn(&pid, path, &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (result == 0) *pid_out = pid;
    return result;
}

int clinux_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int clinux_pidfd_reap(int pidfd, int *code, int *signal_out) {
    siginfo_t info = {0};
    if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)pidfd, &info, WEXITED | WNOHANG) < 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code == CLD_EXITED ? info.si_status : -1;
    *signal_out = (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) ? info.si_status : 0;
    return 1;
}

int clinux_pidfd_signal(int pidfd, int signo) { return (int)syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0); }

int clinux_poll_readable(int fd, int timeout_ms) {
    struct pollfd entry = { .fd = fd, .events = POLLIN };
    int ready = poll(&entry, 1, timeout_ms);
    return ready < 0 ? -1 : (ready > 0 ? 1 : 0);
}

int clinux_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int clinux_seccomp_allow(const int *allowed, int count, int refusal) {
    if (count < 0 || count > 1000) { errno = EINVAL; return -1; }
    size_t length = (size_t)count + 5;
    struct sock_filter *program = calloc(length, sizeof *program);
    if (program == NULL) return -1;
    size_t at = 0;
    /* Another architecture's syscall numbers mean other calls: refuse them all. */
    program[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, (unsigned)count + 1);
    program[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int index = 0; index < count; index++)
        program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[index], (unsigned)(count - index), 0);
    unsigned deny = refusal < 0 ? SECCOMP_RET_KILL_PROCESS : (SECCOMP_RET_ERRNO | ((unsigned)refusal & SECCOMP_RET_DATA));
    program[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    program[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog filter = { .len = (unsigned short)at, .filter = program };
    long result = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &filter);
    int saved = errno;
    free(program);
    errno = saved;
    return result == 0 ? 0 : -1;
}
