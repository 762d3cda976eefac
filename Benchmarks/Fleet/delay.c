/* Network delay for `make bench-fleet` on kernels without sch_netem: every packet that
 * iptables sends to NFQUEUE QUEUE is held for DELAY_MS and then let through, in arrival
 * order (handshakes included, as netem would).
 *
 *   delay QUEUE DELAY_MS
 *
 * With the rules
 *   iptables-legacy -A OUTPUT -d NET -j NFQUEUE --queue-num QUEUE
 *   iptables-legacy -A INPUT  -s NET -j NFQUEUE --queue-num QUEUE
 * every round trip between this namespace and NET takes 2 x DELAY_MS more. Prints
 * "ready" once bound; runs until SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define HELD (1u << 16) /* packets in flight at once; more are let through at once */

static struct { uint32_t id; uint64_t due; } held[HELD];
static unsigned head, tail; /* held[head..tail) in due order: the delay is the same for all */
static uint64_t delay_ns;
static volatile sig_atomic_t stopping;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int arrived(struct nfq_q_handle *queue, struct nfgenmsg *message, struct nfq_data *packet, void *data) {
    (void)message;
    (void)data;
    struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(packet);
    if (!header) return 0;
    uint32_t id = ntohl(header->packet_id);
    if (tail - head == HELD) return nfq_set_verdict(queue, id, NF_ACCEPT, 0, NULL);
    held[tail % HELD].id = id;
    held[tail % HELD].due = now_ns() + delay_ns;
    tail++;
    return 0;
}

static void stop(int signal) {
    (void)signal;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: delay QUEUE DELAY_MS\n");
        return 1;
    }
    int number = atoi(argv[1]), milliseconds = atoi(argv[2]);
    if (number < 0 || number > 65535 || milliseconds < 0 || milliseconds > 10000) {
        fprintf(stderr, "delay: QUEUE must be 0-65535 and DELAY_MS 0-10000\n");
        return 1;
    }
    delay_ns = (uint64_t)milliseconds * 1000000ull;
    struct nfq_handle *handle = nfq_open();
    struct nfq_q_handle *queue = handle ? nfq_create_queue(handle, (uint16_t)number, arrived, NULL) : NULL;
    if (!queue || nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0) {
        perror("delay: cannot bind the queue (root? iptables-legacy rules?)");
        return 1;
    }
    nfq_set_queue_maxlen(queue, HELD);
    /* Never drop for want of room: a full queue lets packets through undelayed. */
    nfq_set_queue_flags(queue, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
    int fd = nfq_fd(handle);
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    puts("ready");
    fflush(stdout);
    char buffer[4096] __attribute__((aligned));
    while (!stopping) {
        uint64_t now = now_ns();
        while (head != tail && held[head % HELD].due <= now) {
            nfq_set_verdict(queue, held[head % HELD].id, NF_ACCEPT, 0, NULL);
            head++;
        }
        int timeout = head == tail ? 100 : (int)((held[head % HELD].due - now + 999999) / 1000000);
        struct pollfd wait = {.fd = fd, .events = POLLIN};
        if (poll(&wait, 1, timeout) > 0) {
            ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            while (got > 0) {
                nfq_handle_packet(handle, buffer, (int)got);
                got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            }
        }
    }
    while (head != tail) nfq_set_verdict(queue, held[head++ % HELD].id, NF_ACCEPT, 0, NULL);
    nfq_destroy_queue(queue);
    nfq_close(handle);
    return 0;
}
