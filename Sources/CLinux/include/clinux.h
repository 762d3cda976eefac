/*
 * CLinux: typed wrappers for Linux calls Swift's Glibc module does not expose
 * (they need _GNU_SOURCE or are macros). No logic lives here.
 */
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/syscall.h>  /* SYS_* numbers, for the VM process's seccomp allow list */

/* memfd_create(name, MFD_CLOEXEC) */
int clinux_memfd_create(const char *name);
/* fallocate(PUNCH_HOLE | KEEP_SIZE): frees the range; later reads see zeroes. */
int clinux_punch_hole(int fd, int64_t offset, int64_t length);
/* fallocate(KEEP_SIZE): allocates the range (guest_memfd requires KEEP_SIZE). */
int clinux_allocate(int fd, int64_t offset, int64_t length);
int clinux_madvise_dontneed(void *addr, uint64_t length);
int clinux_madvise_remove(void *addr, uint64_t length);
/* The calling thread's pthread_t, widened for storage. */
uint64_t clinux_pthread_self(void);
int clinux_pthread_kill(uint64_t thread, int signo);
/* getdents64(fd, buffer, length): fills the caller's buffer with whole linux_dirent64 records
 * (d_ino u64 @0, d_off s64 @8, d_reclen u16 @16, d_type u8 @18, d_name @19, NUL-terminated);
 * returns the bytes written, 0 at the end, -1 with errno. */
long clinux_getdents64(int fd, void *buffer, size_t length);
/* malloc_trim(0): hands free heap pages of every arena back to the kernel. */
int clinux_malloc_trim(void);
/* posix_spawn(path, argv) in a new session (setsid), every signal unblocked and at its default
 * except the ignored ones, with fds[i] as descriptor i for i < fd_count and every other descriptor
 * closed. Returns 0 and the pid in *pid_out, or an errno. */
int clinux_spawn_session(const char *path, char *const argv[], const int *fds, int fd_count, int *pid_out);
/* pidfd_open(pid, 0): a descriptor that names this process, whoever its parent is. */
int clinux_pidfd_open(int pid);
/* waitid(P_PIDFD, pidfd, WEXITED | WNOHANG): 1 with *code (exit status) or *signal set when it
 * ended and was reaped, 0 while it runs, -1 with errno (ECHILD: not our child). */
int clinux_pidfd_reap(int pidfd, int *code, int *signal_out);
/* pidfd_send_signal(pidfd, signo): no race with pid reuse. */
int clinux_pidfd_signal(int pidfd, int signo);
/* poll(fd, POLLIN, timeout_ms): 1 readable, 0 timeout, -1 with errno. */
int clinux_poll_readable(int fd, int timeout_ms);
/* prctl(PR_SET_NO_NEW_PRIVS, 1): no exec after this can gain privileges. */
int clinux_no_new_privs(void);
/* Installs a seccomp filter (SECCOMP_SET_MODE_FILTER, TSYNC: every thread) that allows the
 * x86-64 syscalls in `allowed` and answers every other with `refusal` (an errno, or -1 to kill
 * the process). Returns 0 or -1 with errno. */
int clinux_seccomp_allow(const int *allowed, int count, int refusal);
#endif
