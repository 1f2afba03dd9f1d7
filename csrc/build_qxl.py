"""cffi build script for vgpu._qxl: the QXL ABI structs, for reading guest memory."""

import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cdef import cdef_text  # noqa: E402

# The atomic helpers declared at the end of qxl_abi.h: the interrupt word is shared
# with a guest that may run in another process, so plain Python read-modify-write
# would lose bits; the 3D fence's 64-bit value is read whole, never half-written.
SOURCE = """
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "qxl_abi.h"
#define SC __ATOMIC_SEQ_CST
uint32_t vgpu_atomic_or32(uint32_t *p, uint32_t v) { return __atomic_fetch_or(p, v, SC); }
uint32_t vgpu_atomic_xchg32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, SC); }
uint32_t vgpu_atomic_load32(uint32_t *p) { return __atomic_load_n(p, SC); }
void vgpu_atomic_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, SC); }
uint64_t vgpu_atomic_load64(uint64_t *p) { return __atomic_load_n(p, SC); }
void vgpu_atomic_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, SC); }

/* Brief waits on a word another thread writes, called with the interpreter lock released
 * (cffi releases it): a thread that sleeps at once leaves its core to halt, and waking a
 * halted core costs tens of microseconds on a virtual machine. Each turn yields the core;
 * a yield that took SPIN_BUSY_NS or more means other work was waiting for it, and then a
 * sleeping waiter (woken first when its word changes) beats a spinning one (queued behind
 * that work): the spin gives up. */
static uint64_t spin_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
#define SPIN_BUSY_NS 20000u  /* a yield to nobody takes ~1 us; another thread's turn, more */
static int spin_on(uint64_t *end, uint64_t max_ns) {
    /* one turn: yield; 0 once the time is up or the core turned out to be wanted */
    uint64_t before = spin_now();
    if (!*end)
        *end = before + max_ns;
    sched_yield();
    uint64_t after = spin_now();
    return after < *end && after - before < SPIN_BUSY_NS;
}
uint64_t vgpu_spin_until64(uint64_t *p, uint64_t value, uint64_t max_ns) {
    uint64_t end = 0;
    while (__atomic_load_n(p, SC) < value && spin_on(&end, max_ns))
        ;
    return __atomic_load_n(p, SC);
}
uint32_t vgpu_spin_while32(uint32_t *p, uint32_t value, uint64_t max_ns) {
    uint64_t end = 0;
    while (__atomic_load_n(p, SC) == value && spin_on(&end, max_ns))
        ;
    return __atomic_load_n(p, SC);
}

/* A word threads of this process sleep on: w[0] the value, w[1] how many threads sleep on
 * it. A waiter sleeps in the kernel (a futex) with the interpreter lock released, and a
 * setter makes the system call only when one sleeps: a Python condition variable costs each
 * side microseconds of interpreter and lock work per wait (the in-process IRQ line, the
 * device thread's doorbell). */
uint32_t vgpu_word_wait(uint32_t *w, uint32_t value, uint64_t timeout_ns) {
    uint64_t end = spin_now() + timeout_ns;
    __atomic_fetch_add(&w[1], 1, SC);
    uint32_t now_value;
    while ((now_value = __atomic_load_n(&w[0], SC)) == value) {
        uint64_t now = spin_now();
        if (now >= end)
            break;
        uint64_t left = end - now;
        struct timespec t = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        if (syscall(SYS_futex, &w[0], FUTEX_WAIT_PRIVATE, value, &t, NULL, 0) != 0
                && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
            break;
    }
    __atomic_fetch_sub(&w[1], 1, SC);
    return now_value;
}
void vgpu_word_set(uint32_t *w, uint32_t value) {
    __atomic_store_n(&w[0], value, SC);
    if (__atomic_load_n(&w[1], SC))
        syscall(SYS_futex, &w[0], FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static uint64_t wd_busy_since;  /* CLOCK_MONOTONIC ns of the oldest unfinished 3D work; 0 */
static uint64_t wd_limit;
static int wd_status;
static int wd_started;
static uint64_t wd_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
static void *wd_main(void *arg) {
    (void)arg;
    for (;;) {
        usleep(100000);  /* a tenth of a second: late by at most that */
        uint64_t since = __atomic_load_n(&wd_busy_since, SC);
        uint64_t limit = __atomic_load_n(&wd_limit, SC);
        if (since && wd_now() - since > limit) {
            char msg[200];
            int n = snprintf(msg, sizeof msg, "vgpu serve: 3D work stuck for %.1f s with the "
                             "interpreter blocked: giving up, as a GPU reset would\\n",
                             (double)(wd_now() - since) / 1e9);
            if (n > 0 && write(2, msg, (size_t)n) < 0) { /* nothing left to tell */ }
            _exit(__atomic_load_n(&wd_status, SC));
        }
    }
    return NULL;
}
int vgpu_watchdog_start(uint64_t limit_ns, int exit_status) {
    __atomic_store_n(&wd_limit, limit_ns, SC);
    __atomic_store_n(&wd_status, exit_status, SC);
    if (__atomic_exchange_n(&wd_started, 1, SC))
        return 0;
    pthread_t t;
    if (pthread_create(&t, NULL, wd_main, NULL) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}
void vgpu_watchdog_busy(void) {
    uint64_t zero = 0;  /* the oldest unfinished work counts: only an idle mark resets it */
    __atomic_compare_exchange_n(&wd_busy_since, &zero, wd_now(), 0, SC, SC);
}
void vgpu_watchdog_idle(void) { __atomic_store_n(&wd_busy_since, 0, SC); }
"""

ffi = FFI()
ffi.cdef(cdef_text(HERE / "qxl_abi.h"), packed=True)
ffi.set_source(
    "vgpu._qxl",
    SOURCE,
    include_dirs=[str(HERE)],
    py_limited_api=False,
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    # Developer rebuild: writes vgpu/<module>.cpython-*.so next to the package.
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
