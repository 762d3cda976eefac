#include "ckvm.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>

static void ckvm_kick_handler(int signo) { (void)signo; /* only interrupts KVM_RUN */ }

int ckvm_kick_signal(void) { return SIGRTMIN + 2; }

int ckvm_install_kick_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ckvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return EINTR */
    return sigaction(ckvm_kick_signal(), &sa, NULL);
}

int ckvm_unblock_kick_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, ckvm_kick_signal());
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
