/*
 * CNet: typed wrappers for the socket calls Swift's Glibc overlay lacks or
 * makes awkward (epoll, accept4, eventfd, sendmsg with MSG_NOSIGNAL,
 * SO_PEERCRED). No logic lives here.
 */
#ifndef CNET_H
#define CNET_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/* An epoll event without the packed layout of struct epoll_event. */
typedef struct {
    uint32_t events;
    uint64_t data;
} cnet_event;

enum {
    CNET_IN = 0x001,     /* EPOLLIN */
    CNET_OUT = 0x004,    /* EPOLLOUT */
    CNET_ERR = 0x008,    /* EPOLLERR */
    CNET_HUP = 0x010,    /* EPOLLHUP */
    CNET_RDHUP = 0x2000, /* EPOLLRDHUP */
};

int cnet_epoll_create(void);
/* op: 1 add, 2 delete, 3 modify (EPOLL_CTL_*). */
int cnet_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/* Fills up to max events; returns their count, or -1 with errno. */
int cnet_epoll_wait(int epfd, cnet_event *events, int max, int timeout_ms);

/* accept4(SOCK_NONBLOCK | SOCK_CLOEXEC); -1 with errno. */
int cnet_accept(int fd);

/* A non-blocking listening socket on host:port (IPv4 or IPv6 literal); -1 with errno. */
int cnet_listen_tcp(const char *host, uint16_t port, int backlog);
/* A non-blocking listening Unix socket at path with the given mode; -1 with errno. */
int cnet_listen_unix(const char *path, int backlog, unsigned mode);
/* The local port of a bound socket, or -1. */
int cnet_local_port(int fd);

/* A blocking client socket (tests, probes); -1 with errno. */
int cnet_connect_tcp(const char *host, uint16_t port);
/* The same, from a chosen local address (e.g. one of 127.0.0.0/8); source NULL lets the kernel choose. */
int cnet_connect_tcp_from(const char *host, uint16_t port, const char *source);
int cnet_connect_unix(const char *path);

int cnet_set_nodelay(int fd);
/* Sets SO_RCVTIMEO/SO_SNDTIMEO in milliseconds on a blocking socket. */
int cnet_set_timeouts(int fd, int milliseconds);

/* One sendmsg of two buffers, MSG_NOSIGNAL | MSG_DONTWAIT; bytes sent or -1 with errno. */
ssize_t cnet_send2(int fd, const void *a, size_t a_len, const void *b, size_t b_len);
/* recv with MSG_DONTWAIT; bytes, 0 at EOF, or -1 with errno. */
ssize_t cnet_recv(int fd, void *buffer, size_t length);

/* The peer's uid on a Unix socket (SO_PEERCRED), or -1. */
long cnet_peer_uid(int fd);
/* The peer's pid by SO_PEERCRED (-1 with errno). */
long cnet_peer_pid(int fd);
/* The peer's address as text ("127.0.0.1:5555", "[::1]:5555"), written into out. */
int cnet_peer_name(int fd, char *out, size_t out_len);

/* eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); signal adds 1; drain reads and resets. */
int cnet_eventfd(void);
int cnet_eventfd_signal(int fd);
int cnet_eventfd_drain(int fd);

/* shutdown(SHUT_WR) and close, for a clean end of a connection. */
int cnet_close(int fd);
#endif
