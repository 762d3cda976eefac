/*
 * CLinux: typed wrappers for Linux calls Swift's Glibc module does not expose
 * (they need _GNU_SOURCE or are macros). No logic lives here.
 */
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>
#include <sys/types.h>

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
#endif
