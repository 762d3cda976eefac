/* The readers of `make bench-stream`: N connections to GET /v1/events/stream on one
 * agent, read with epoll from one thread, as lean as a reader can be (so what is
 * measured is the agent, not the client).
 *
 *   readers PORT TOKEN STREAMS
 *
 * Prints "ready" once every stream has answered 200, then reads until every stream
 * has seen `event: vm_ended` (or was closed), and prints one line:
 *   events=<conversion events, all streams> complete=<streams that saw vm_ended>
 *   overflows=<n> min_stream=<fewest conversions on one stream> max_stream=<most>
 *   p50_us=<n> p99_us=<n> max_us=<n> first_ns=<n> last_ns=<n>
 * The latency of an event is the reader's CLOCK_REALTIME when the bytes that finish
 * it were read, minus the event's completed_ns (the agent's wall clock when the
 * conversion completed, before its commit): an upper bound on commit-to-receipt. Every
 * 8th conversion of each stream is timed; every event is counted.
 * Exit status 0 when the line was printed, 1 on a setup failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 10ull
#define BUCKETS 1000000ull /* 10 s in 10 µs buckets; slower counts in the last one */
#define BUFFER (4u << 20)
#define SAMPLE_EVERY 8

struct reader {
    int fd;
    int headers_done;
    int done;
    uint64_t vm; /* the VM of the first conversion: only its vm_ended ends the stream */
    uint64_t conversions;
    size_t used;
    char *buffer;
};

static uint32_t *histogram;
static uint64_t events, timed, overflows, complete, max_ns, first_ns, last_ns;

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The number after `key` in the first `window` bytes of `text` (0 when absent): the keys
 * read here sit near the start of their object, so no scan of the whole event. */
static uint64_t number_after(const char *text, size_t length, const char *key, size_t window) {
    size_t key_length = strlen(key), limit = length < window ? length : window;
    for (size_t i = 0; i + key_length <= limit; i++) {
        if (text[i] != '"' || memcmp(text + i, key, key_length) != 0) continue;
        uint64_t value = 0;
        for (const char *p = text + i + key_length; p < text + length && *p >= '0' && *p <= '9'; p++) value = value * 10 + (uint64_t)(*p - '0');
        return value;
    }
    return 0;
}

/* One SSE event, by its `event:` type and `data:`. */
static void event(struct reader *r, const char *type, size_t type_length, const char *data, size_t data_length, uint64_t now) {
    if (type_length == 10 && memcmp(type, "conversion", 10) == 0) {
        if (!r->vm) r->vm = number_after(data, data_length, "\"vm_id\":", data_length);
        /* Every 8th conversion of a stream is timed (a sample as good for p99 as all of them,
         * and the reader stays cheap next to the agent it measures). */
        if (r->conversions % SAMPLE_EVERY == 0) {
            uint64_t completed = number_after(data, data_length, "\"completed_ns\":", 200);
            uint64_t latency = now > completed ? now - completed : 0;
            uint64_t bucket = latency / 1000 / BUCKET_US;
            histogram[bucket < BUCKETS ? bucket : BUCKETS - 1]++;
            timed++;
            if (latency > max_ns) max_ns = latency;
        }
        if (!first_ns) first_ns = now;
        last_ns = now;
        events++;
        r->conversions++;
    } else if (type_length == 8 && memcmp(type, "vm_ended", 8) == 0 && r->vm &&
               number_after(data, data_length, "\"vm_id\":", data_length) == r->vm) {
        complete++;
        r->done = 1;
    } else if (type_length == 8 && memcmp(type, "overflow", 8) == 0) {
        overflows++;
        r->done = 1;
    }
}

/* Takes every whole event from the reader's buffer, line by line (memchr: the reader must
 * cost little next to the agent). */
static void consume(struct reader *r, uint64_t now) {
    char *start = r->buffer, *end = r->buffer + r->used;
    if (!r->headers_done) {
        char *blank = memmem(start, r->used, "\r\n\r\n", 4);
        if (!blank) return;
        if (r->used < 12 || memcmp(start + 9, "200", 3) != 0) {
            fprintf(stderr, "readers: the stream was refused: %.*s\n", (int)(blank - start), start);
            exit(1);
        }
        r->headers_done = 1;
        start = blank + 4;
    }
    for (;;) {
        const char *type = NULL, *data = NULL;
        size_t type_length = 0, data_length = 0;
        char *line = start;
        int whole = 0;
        for (;;) {
            char *newline = memchr(line, '\n', (size_t)(end - line));
            if (!newline) break;
            size_t length = (size_t)(newline - line);
            if (length == 0) {
                whole = 1;
                line = newline + 1;
                break;
            }
            if (length > 7 && memcmp(line, "event: ", 7) == 0) {
                type = line + 7;
                type_length = length - 7;
            } else if (length > 6 && memcmp(line, "data: ", 6) == 0) {
                data = line + 6;
                data_length = length - 6;
            }
            line = newline + 1;
        }
        if (!whole) break;
        if (type && data) event(r, type, type_length, data, data_length, now);
        start = line;
    }
    r->used = (size_t)(end - start);
    memmove(r->buffer, start, r->used);
}

static uint64_t percentile(double p) {
    uint64_t want = (uint64_t)(p * (double)timed), seen = 0;
    for (uint64_t i = 0; i < BUCKETS; i++) {
        seen += histogram[i];
        if (seen > want) return (i + 1) * BUCKET_US;
    }
    return BUCKETS * BUCKET_US;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: readers PORT TOKEN STREAMS\n");
        return 1;
    }
    int port = atoi(argv[1]), streams = atoi(argv[3]);
    if (port <= 0 || port > 65535 || streams <= 0 || streams > 4096) {
        fprintf(stderr, "readers: PORT must be 1-65535 and STREAMS 1-4096\n");
        return 1;
    }
    histogram = calloc(BUCKETS, sizeof *histogram);
    struct reader *readers = calloc((size_t)streams, sizeof *readers);
    int epoll = epoll_create1(0);
    if (!histogram || !readers || epoll < 0) {
        perror("readers: setup");
        return 1;
    }
    char request[512];
    int length = snprintf(request, sizeof request,
                          "GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                          "Accept: text/event-stream\r\n\r\n", argv[2]);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < streams; i++) {
        struct reader *r = &readers[i];
        r->buffer = malloc(BUFFER);
        r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (!r->buffer || r->fd < 0 || connect(r->fd, (struct sockaddr *)&address, sizeof address) != 0 ||
            write(r->fd, request, (size_t)length) != length) {
            perror("readers: connect");
            return 1;
        }
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = r};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, r->fd, &event) != 0) {
            perror("readers: epoll_ctl");
            return 1;
        }
    }
    int ready = 0, open = streams;
    while (open > 0) {
        struct epoll_event happened[64];
        int n = epoll_wait(epoll, happened, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            perror("readers: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            struct reader *r = happened[k].data.ptr;
            if (r->done) continue;
            ssize_t got = read(r->fd, r->buffer + r->used, BUFFER - r->used);
            uint64_t now = realtime_ns();
            if (got <= 0) {
                if (got < 0 && errno == EINTR) continue;
                r->done = 1;
            } else {
                r->used += (size_t)got;
                int had_headers = r->headers_done;
                consume(r, now);
                if (!had_headers && r->headers_done && ++ready == streams) {
                    puts("ready");
                    fflush(stdout);
                }
                if (r->used == BUFFER) {
                    fprintf(stderr, "readers: a frame longer than %u bytes\n", BUFFER);
                    return 1;
                }
            }
            if (r->done) {
                close(r->fd);
                open--;
            }
        }
    }
    uint64_t fewest = UINT64_MAX, most = 0;
    for (int i = 0; i < streams; i++) {
        if (readers[i].conversions < fewest) fewest = readers[i].conversions;
        if (readers[i].conversions > most) most = readers[i].conversions;
    }
    printf("events=%llu complete=%llu overflows=%llu min_stream=%llu max_stream=%llu p50_us=%llu p99_us=%llu max_us=%llu "
           "first_ns=%llu last_ns=%llu\n",
           (unsigned long long)events, (unsigned long long)complete, (unsigned long long)overflows, (unsigned long long)fewest,
           (unsigned long long)most, (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
           (unsigned long long)(max_ns / 1000), (unsigned long long)first_ns, (unsigned long long)last_ns);
    return 0;
}
