/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rest of the QEMU-compatible C API: context lifecycle, the GSource reference,
 * timers and clocks, event notifiers, QemuLockCnt, Error, the osdep.h macros, and the
 * aborts QEMU code relies on (a leaked bottom half, error_abort, error_fatal), checked
 * in subprocesses.
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/aio-wait.h"
#include "qapi/error.h"
#include "qemu/event_notifier.h"
#include "qemu/lockcnt.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "qemu/timer.h"

static AioContext *main_ctx;

/* Subprocess checks, skipped under valgrind: GLib's child-watch thread (started by
 * g_test_trap_subprocess) lives until exit and is reported as possibly lost. */
static bool trap_subprocess(void)
{
    const char *preload = g_getenv("LD_PRELOAD");

    if (preload != NULL && strstr(preload, "vgpreload") != NULL) {
        g_test_skip("GLib's subprocess machinery under valgrind");
        return false;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    return true;
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* ---- contexts ----------------------------------------------------------------------- */

static void test_context_lifecycle(void)
{
    AioContext *c = aio_context_new(&error_abort);
    GSource *src;
    QEMUBH *bh;
    int runs = 0;

    g_assert(c != NULL);
    g_assert(c != main_ctx);
    aio_context_ref(c);
    aio_context_unref(c);

    /* A new reference each time: attach, then drop ours. */
    src = aio_get_g_source(c);
    g_assert(src != NULL);
    g_assert(aio_get_g_source(c) == src);
    g_source_unref(src);
    g_source_unref(src);

    bh = aio_bh_new(c, count_cb, &runs);
    qemu_bh_schedule(bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, 0);
    g_assert(aio_poll(c, false));
    g_assert_cmpint(runs, ==, 1);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);
    /* A QEMUBH does not hold the context: delete it before the last unref. */
    qemu_bh_delete(bh);
    aio_context_unref(c);
}

/* A BH scheduled and never deleted when its context is destroyed: QEMU aborts with
 * the BH's name (aio_bh_new names it after the callback). */
static void leaky_cb(void *opaque)
{
    (void)opaque;
}

static void test_context_bh_leak(void)
{
    if (g_test_subprocess()) {
        AioContext *c = aio_context_new(&error_abort);
        QEMUBH *bh = aio_bh_new(c, leaky_cb, NULL);
        qemu_bh_schedule(bh);
        aio_context_unref(c);
        return;
    }
    if (!trap_subprocess()) {
        return;
    }
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*BH 'leaky_cb' leaked*");
}

/* An unscheduled BH that was never deleted is not an error (as in QEMU it leaks). A
 * deleted one is freed by the context; a one-shot is freed after it ran. */
static void test_context_unref_with_deleted_bh(void)
{
    AioContext *c = aio_context_new(&error_abort);
    QEMUBH *bh = aio_bh_new(c, leaky_cb, NULL);
    int runs = 0;

    qemu_bh_schedule(bh);
    qemu_bh_delete(bh); /* not yet reaped: the context frees it at destruction */
    aio_bh_schedule_oneshot(c, count_cb, &runs);
    g_assert(aio_poll(c, false));
    g_assert_cmpint(runs, ==, 1);
    aio_context_unref(c);
}

/* Nested aio_poll from a bottom half finishes the outer batch first. */
typedef struct {
    AioContext *ctx;
    QEMUBH *outer, *other;
    int other_runs;
} NestProbe;

static void nest_other_cb(void *opaque)
{
    ((NestProbe *)opaque)->other_runs++;
}

static void nest_outer_cb(void *opaque)
{
    NestProbe *p = opaque;

    /* `other` was taken in the same batch as us (or is still pending): the nested poll
     * runs it. */
    if (p->other_runs == 0) {
        g_assert(aio_poll(p->ctx, false));
        g_assert_cmpint(p->other_runs, ==, 1);
    }
}

static void test_nested_poll(void)
{
    NestProbe p = { .ctx = main_ctx };

    p.outer = aio_bh_new(main_ctx, nest_outer_cb, &p);
    p.other = aio_bh_new(main_ctx, nest_other_cb, &p);
    qemu_bh_schedule(p.other);
    qemu_bh_schedule(p.outer);
    g_assert(aio_poll(main_ctx, false));
    g_assert_cmpint(p.other_runs, ==, 1);
    g_assert(!aio_poll(main_ctx, false));
    qemu_bh_delete(p.outer);
    qemu_bh_delete(p.other);
}

static void test_main_loop(void)
{
    QEMUBH *bh;
    int runs = 0;

    g_assert(qemu_init_main_loop(&error_abort) == 0); /* again: a no-op */
    g_assert(qemu_get_aio_context() == main_ctx);
    g_assert(qemu_get_current_aio_context() == main_ctx);
    g_assert(in_aio_context_home_thread(main_ctx));
    qemu_set_current_aio_context(main_ctx); /* the same one: fine */

    bh = qemu_bh_new(count_cb, &runs);
    qemu_bh_schedule(bh);
    g_assert(g_main_context_iteration(NULL, false));
    g_assert_cmpint(runs, ==, 1);
    qemu_bh_delete(bh);
    qemu_notify_event();
    while (g_main_context_iteration(NULL, false)) {
    }
}

static gpointer current_in_thread(gpointer opaque)
{
    (void)opaque;
    return qemu_get_current_aio_context();
}

static void test_current_in_other_thread(void)
{
    GThread *t = g_thread_new("no-ctx", current_in_thread, NULL);

    /* No BQL here: a thread that drives no context has none. */
    g_assert(g_thread_join(t) == NULL);
}

static void bump_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_wait_bh_oneshot_same_thread(void)
{
    int runs = 0;

    aio_wait_bh_oneshot(main_ctx, bump_cb, &runs); /* runs it directly */
    g_assert_cmpint(runs, ==, 1);
    g_assert(!AIO_WAIT_WHILE(NULL, runs == 0));
}

/* ---- timers ---------------------------------------------------------------------------- */

typedef struct {
    int order[8];
    int n;
} FireLog;

typedef struct {
    QEMUTimer t;
    FireLog *log;
    int tag;
} LoggedTimer;

static void logged_cb(void *opaque)
{
    LoggedTimer *lt = opaque;

    lt->log->order[lt->log->n++] = lt->tag;
}

static void run_until(FireLog *log, int n)
{
    while (log->n < n) {
        aio_poll(main_ctx, true);
    }
}

static void test_timer_order(void)
{
    FireLog log = { .n = 0 };
    LoggedTimer lt[4];
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    int i;

    for (i = 0; i < 4; i++) {
        lt[i].log = &log;
        lt[i].tag = i;
        aio_timer_init(main_ctx, &lt[i].t, QEMU_CLOCK_REALTIME, SCALE_NS, logged_cb, &lt[i]);
    }
    /* Equal deadlines fire in arming order; an earlier one first. */
    timer_mod_ns(&lt[2].t, now + 2 * SCALE_MS);
    timer_mod_ns(&lt[0].t, now + 2 * SCALE_MS);
    timer_mod_ns(&lt[3].t, now + 2 * SCALE_MS);
    timer_mod_ns(&lt[1].t, now + 1 * SCALE_MS);
    g_assert_cmpuint(timer_expire_time_ns(&lt[1].t), ==, (uint64_t)(now + SCALE_MS));
    g_assert_cmpint(lt[1].t.expire_time, ==, now + SCALE_MS);
    run_until(&log, 4);
    g_assert_cmpint(log.order[0], ==, 1);
    g_assert_cmpint(log.order[1], ==, 2);
    g_assert_cmpint(log.order[2], ==, 0);
    g_assert_cmpint(log.order[3], ==, 3);
    for (i = 0; i < 4; i++) {
        g_assert(!timer_pending(&lt[i].t));
        g_assert_cmpint(lt[i].t.expire_time, ==, -1);
        timer_deinit(&lt[i].t);
    }
}

static void test_timer_anticipate_and_del(void)
{
    FireLog log = { .n = 0 };
    LoggedTimer lt = { .log = &log, .tag = 7 };
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    aio_timer_init(main_ctx, &lt.t, QEMU_CLOCK_REALTIME, SCALE_MS, logged_cb, &lt);
    g_assert(!timer_pending(&lt.t));
    g_assert_cmpuint(timer_expire_time_ns(&lt.t), ==, (uint64_t)-1);

    timer_mod(&lt.t, now + 60000);                 /* a minute away */
    g_assert(timer_pending(&lt.t));
    timer_mod_anticipate(&lt.t, now + 120000);     /* later: ignored */
    g_assert_cmpuint(timer_expire_time_ns(&lt.t), ==, (uint64_t)(now + 60000) * SCALE_MS);
    timer_mod_anticipate(&lt.t, now + 30000);      /* earlier: taken */
    g_assert_cmpuint(timer_expire_time_ns(&lt.t), ==, (uint64_t)(now + 30000) * SCALE_MS);
    g_assert(!timer_expired(&lt.t, now));
    g_assert(timer_expired(&lt.t, now + 30000));
    g_assert(aio_compute_timeout(main_ctx) > 0);
    g_assert(timerlistgroup_deadline_ns(&main_loop_tlg) > 0);
    g_assert(timerlist_get_clock(main_loop_tlg.tl[QEMU_CLOCK_HOST]) == QEMU_CLOCK_HOST);

    timer_del(&lt.t);
    g_assert(!timer_pending(&lt.t));
    g_assert_cmpint(aio_compute_timeout(main_ctx), ==, -1);
    g_assert_cmpint(timerlistgroup_deadline_ns(&main_loop_tlg), ==, -1);
    g_assert_cmpint(timerlist_deadline_ns(main_loop_tlg.tl[QEMU_CLOCK_REALTIME]), ==, -1);

    /* A deadline in the past fires on the next iteration. */
    timer_mod_anticipate_ns(&lt.t, 0);
    g_assert(aio_poll(main_ctx, false));
    g_assert_cmpint(log.n, ==, 1);
    g_assert_cmpint(log.order[0], ==, 7);
}

/* A timer freed by its own callback, and one re-armed by it, on the main loop group. */
static int self_free_runs;

static void free_self_cb(void *opaque)
{
    QEMUTimer **tp = opaque;

    self_free_runs++;
    timer_free(*tp);
    *tp = NULL;
}

static void test_timer_free_in_callback(void)
{
    QEMUTimer *t = NULL;

    t = timer_new_ms(QEMU_CLOCK_REALTIME, free_self_cb, &t);
    timer_mod(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1);
    while (t != NULL) {
        aio_poll(main_ctx, true);
    }
    g_assert_cmpint(self_free_runs, ==, 1);
}

static void test_timer_virtual_clock(void)
{
    int runs = 0;
    QEMUTimer *t = aio_timer_new(main_ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, count_cb, &runs);
    int64_t frozen;

    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    frozen = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    timer_mod(t, frozen); /* due, but the clock stands still */
    g_usleep(2000);
    g_assert_cmpint(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), ==, frozen);
    g_assert(!aio_poll(main_ctx, false));
    g_assert_cmpint(runs, ==, 0);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    g_assert(aio_poll(main_ctx, true));
    g_assert_cmpint(runs, ==, 1);
    timer_free(t);
    timer_free(NULL);
}

static void test_timeout_helpers(void)
{
    g_assert_cmpint(qemu_timeout_ns_to_ms(-1), ==, -1);
    g_assert_cmpint(qemu_timeout_ns_to_ms(0), ==, 0);
    g_assert_cmpint(qemu_timeout_ns_to_ms(1), ==, 1);          /* rounds up */
    g_assert_cmpint(qemu_timeout_ns_to_ms(SCALE_MS), ==, 1);
    g_assert_cmpint(qemu_timeout_ns_to_ms(SCALE_MS + 1), ==, 2);
    g_assert_cmpint(qemu_timeout_ns_to_ms(INT64_MAX), ==, INT32_MAX);
    g_assert_cmpint(qemu_soonest_timeout(-1, 5), ==, 5);
    g_assert_cmpint(qemu_soonest_timeout(7, -1), ==, 7);
    g_assert_cmpint(qemu_soonest_timeout(7, 5), ==, 5);
    g_assert_cmpint(qemu_soonest_timeout(-1, -1), ==, -1);
    g_assert_cmpint(qemu_clock_get_ms(QEMU_CLOCK_HOST), >, 1600000000000LL); /* 2020 */
    g_assert_cmpint(qemu_clock_get_us(QEMU_CLOCK_VIRTUAL_RT), >, 0);
}

/* ---- event notifiers, lock counters ----------------------------------------------------- */

static void test_event_notifier(void)
{
    EventNotifier e = { .rfd = -1, .wfd = -1, .initialized = false };

    g_assert_cmpint(event_notifier_set(&e), ==, -1);       /* not initialised */
    g_assert(!event_notifier_test_and_clear(&e));
    g_assert_cmpint(event_notifier_init(&e, true), ==, 0);
    g_assert(e.initialized);
    /* The C fields show the library's fds. */
    g_assert_cmpint(e.rfd, >=, 0);
    g_assert_cmpint(event_notifier_get_fd(&e), ==, e.rfd);
    g_assert_cmpint(event_notifier_get_wfd(&e), ==, e.wfd);
    g_assert(fcntl(e.rfd, F_GETFD) >= 0);
    g_assert(event_notifier_test_and_clear(&e));           /* init'ed active */
    g_assert(!event_notifier_test_and_clear(&e));
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert(event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    g_assert(!e.initialized);
    event_notifier_cleanup(&e);                            /* twice is fine */
}

typedef struct {
    QemuLockCnt lc;
    int *data;  /* g_atomic; freed only with the lock held and no visit in progress */
    int reads;
    int stop;
} LockCntProbe;

static gpointer lockcnt_reader(gpointer opaque)
{
    LockCntProbe *p = opaque;
    int reads = 0;

    while (!g_atomic_int_get(&p->stop)) {
        int *d;

        qemu_lockcnt_inc(&p->lc);
        d = g_atomic_pointer_get(&p->data);
        g_assert_cmpint(g_atomic_int_get(d), ==, 42); /* never freed under a visit */
        reads++;
        qemu_lockcnt_dec(&p->lc);
    }
    g_atomic_int_add(&p->reads, reads);
    return NULL;
}

static void test_lockcnt(void)
{
    LockCntProbe p = { .reads = 0, .stop = 0 };
    GThread *readers[2];
    int i;

    qemu_lockcnt_init(&p.lc);
    g_assert_cmpuint(qemu_lockcnt_count(&p.lc), ==, 0);
    qemu_lockcnt_inc(&p.lc);
    qemu_lockcnt_inc(&p.lc);
    g_assert_cmpuint(qemu_lockcnt_count(&p.lc), ==, 2);
    g_assert(!qemu_lockcnt_dec_if_lock(&p.lc));            /* not the last visitor */
    g_assert(!qemu_lockcnt_dec_and_lock(&p.lc));           /* 2 -> 1 */
    g_assert(qemu_lockcnt_dec_if_lock(&p.lc));             /* 1 -> 0, locked */
    g_assert_cmpuint(qemu_lockcnt_count(&p.lc), ==, 0);
    qemu_lockcnt_inc_and_unlock(&p.lc);
    g_assert_cmpuint(qemu_lockcnt_count(&p.lc), ==, 1);
    g_assert(qemu_lockcnt_dec_and_lock(&p.lc));            /* the last: locked */
    qemu_lockcnt_unlock(&p.lc);

    /* Readers visit; the writer publishes a fresh copy, then frees the old one once it
     * holds the lock with no visit in progress. */
    p.data = g_new(int, 1);
    *p.data = 42;
    for (i = 0; i < 2; i++) {
        readers[i] = g_thread_new("reader", lockcnt_reader, &p);
    }
    for (i = 0; i < 200; i++) {
        int *fresh = g_new(int, 1);
        int *old;

        *fresh = 42;
        qemu_lockcnt_lock(&p.lc);
        old = g_atomic_pointer_exchange(&p.data, fresh);
        while (qemu_lockcnt_count(&p.lc) != 0) {
            qemu_lockcnt_unlock(&p.lc);
            g_thread_yield();
            qemu_lockcnt_lock(&p.lc);
        }
        g_atomic_int_set(old, 0); /* a reader still holding it would notice */
        g_free(old);
        qemu_lockcnt_unlock(&p.lc);
    }
    g_atomic_int_set(&p.stop, 1);
    for (i = 0; i < 2; i++) {
        g_thread_join(readers[i]);
    }
    g_free(p.data);
    qemu_lockcnt_destroy(&p.lc);
}

/* ---- Error ---------------------------------------------------------------------------- */

static void test_error(void)
{
    Error *err = NULL, *local = NULL;

    error_setg(&err, "bad %s %d", "value", 3);
    g_assert_cmpstr(error_get_pretty(err), ==, "bad value 3");
    error_setg(&local, "second");
    error_propagate(&err, local);                          /* the first one wins */
    local = NULL;                                          /* it took ownership */
    g_assert_cmpstr(error_get_pretty(err), ==, "bad value 3");
    error_free_or_abort(&err);
    g_assert(err == NULL);

    error_setg(&local, "moved");
    error_propagate(&err, local);
    g_assert_cmpstr(error_get_pretty(err), ==, "moved");
    error_free(err);
    err = NULL;
    error_setg(NULL, "ignored");
    error_free(NULL);

    /* The API's own errors. */
    aio_context_set_poll_params(main_ctx, -1, 0, 0, &err);
    g_assert(err != NULL);
    error_free_or_abort(&err);
    aio_context_set_aio_params(main_ctx, 0, &error_abort);
}

static void test_error_abort(void)
{
    if (g_test_subprocess()) {
        aio_context_set_thread_pool_params(main_ctx, 5, 1, &error_abort);
        return;
    }
    if (!trap_subprocess()) {
        return;
    }
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*Unexpected error in aio_context_set_thread_pool_params()*"
                              "bad thread-pool-min/thread-pool-max values*");
}

static void test_error_fatal(void)
{
    if (g_test_subprocess()) {
        error_setg(&error_fatal, "fatal %d", 7);
        return;
    }
    if (!trap_subprocess()) {
        return;
    }
    g_test_trap_assert_failed(); /* exit(1) */
    g_test_trap_assert_stderr("*fatal 7*");
}

static void test_error_report(void)
{
    if (g_test_subprocess()) {
        Error *err = NULL;
        error_setg(&err, "reported %s", "here");
        error_report_err(err);
        return;
    }
    if (!trap_subprocess()) {
        return;
    }
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*reported here*");
}

/* ---- osdep.h ------------------------------------------------------------------------------ */

typedef struct {
    int a;
    double b;
    char c[3];
} Outer;

static void test_osdep(void)
{
    Outer o;
    int arr[7];
    char *p = (char *)(uintptr_t)0x1003;

    g_assert(container_of(&o.b, Outer, b) == &o);
    g_assert(container_of(&o.c[0], Outer, c[0]) == &o);
    g_assert_cmpuint(ARRAY_SIZE(arr), ==, 7);
    g_assert_cmpstr(stringify(count_cb), ==, "count_cb");
    g_assert_cmpint(QEMU_ALIGN_DOWN(13, 4), ==, 12);
    g_assert_cmpint(QEMU_ALIGN_UP(13, 4), ==, 16);
    g_assert(QEMU_IS_ALIGNED(16, 8));
    g_assert((uintptr_t)QEMU_ALIGN_PTR_UP(p, 8) == 0x1008);
    g_assert((uintptr_t)QEMU_ALIGN_PTR_DOWN(p, 8) == 0x1000);
    g_assert(!QEMU_PTR_IS_ALIGNED(p, 4));
    g_assert_cmpint(MIN(3, 4), ==, 3);
    g_assert_cmpint(MAX(3, 4), ==, 4);
    g_assert(likely(p != NULL));
    g_assert(!unlikely(p == NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert(qemu_get_aio_context() == NULL);
    g_assert_cmpint(qemu_init_main_loop(&error_fatal), ==, 0);
    main_ctx = qemu_get_aio_context();
    while (g_main_context_iteration(NULL, false)) {
    }

    g_test_add_func("/qemu-api/abort/bh-leak", test_context_bh_leak);
    g_test_add_func("/qemu-api/abort/error-abort", test_error_abort);
    g_test_add_func("/qemu-api/abort/error-fatal", test_error_fatal);
    g_test_add_func("/qemu-api/abort/error-report", test_error_report);
    g_test_add_func("/qemu-api/context/lifecycle", test_context_lifecycle);
    g_test_add_func("/qemu-api/context/deleted-bh", test_context_unref_with_deleted_bh);
    g_test_add_func("/qemu-api/context/nested-poll", test_nested_poll);
    g_test_add_func("/qemu-api/context/main-loop", test_main_loop);
    g_test_add_func("/qemu-api/context/current-other-thread", test_current_in_other_thread);
    g_test_add_func("/qemu-api/context/wait-bh-oneshot", test_wait_bh_oneshot_same_thread);
    g_test_add_func("/qemu-api/timer/order", test_timer_order);
    g_test_add_func("/qemu-api/timer/anticipate-del", test_timer_anticipate_and_del);
    g_test_add_func("/qemu-api/timer/free-in-callback", test_timer_free_in_callback);
    g_test_add_func("/qemu-api/timer/virtual-clock", test_timer_virtual_clock);
    g_test_add_func("/qemu-api/timer/helpers", test_timeout_helpers);
    g_test_add_func("/qemu-api/primitives/event-notifier", test_event_notifier);
    g_test_add_func("/qemu-api/primitives/lockcnt", test_lockcnt);
    g_test_add_func("/qemu-api/primitives/error", test_error);
    g_test_add_func("/qemu-api/primitives/osdep", test_osdep);
    return g_test_run();
}
