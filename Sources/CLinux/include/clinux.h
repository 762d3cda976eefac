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
#endif
