#define _GNU_SOURCE
#include "clinux.h"
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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
