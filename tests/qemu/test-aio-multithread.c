/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Several IOThreads through the QEMU-compatible C API (reference/qemu-semantics.md §3.3,
 * the parts without coroutines): lifecycle, cross-thread scheduling of one-shot bottom
 * halves between five contexts (a bottom-half version of /aio/multi/schedule), a
 * ping-pong between two contexts, AIO_WAIT_WHILE with aio_wait_kick, timers and GLib
 * sources in an IOThread.
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/aio-wait.h"
#include "iothread.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"

#define NUM_CONTEXTS 5
#define SCHEDULE_MS 300 /* how long /aio/multi/schedule runs (QEMU: 1 s) */
#define PING_PONGS 2000

static IOThread *threads[NUM_CONTEXTS];
static AioContext *ctx[NUM_CONTEXTS];
static _Thread_local int id = -1; /* which IOThread this is */

/* Runs cb(opaque) in ctx[i]'s thread and waits for it (QEMU's test uses a QemuEvent). */
static void ctx_run(int i, QEMUBHFunc *cb, void *opaque)
{
    aio_wait_bh_oneshot(ctx[i], cb, opaque);
}

static void set_id_cb(void *opaque)
{
    int *i = opaque;

    id = *i;
    g_assert(qemu_get_current_aio_context() == ctx[id]);
    g_assert(in_aio_context_home_thread(ctx[id]));
}

static void create_aio_contexts(void)
{
    int i;

    for (i = 0; i < NUM_CONTEXTS; i++) {
        threads[i] = iothread_new();
        ctx[i] = iothread_get_aio_context(threads[i]);
    }
    for (i = 0; i < NUM_CONTEXTS; i++) {
        ctx_run(i, set_id_cb, &i);
    }
}

static void join_aio_contexts(void)
{
    int i;

    for (i = 0; i < NUM_CONTEXTS; i++) {
        aio_context_ref(ctx[i]);
    }
    for (i = 0; i < NUM_CONTEXTS; i++) {
        iothread_join(threads[i]);
    }
    for (i = 0; i < NUM_CONTEXTS; i++) {
        aio_context_unref(ctx[i]);
    }
}

static void test_lifecycle(void)
{
    create_aio_contexts();
    join_aio_contexts();
}

/* ---- /aio/multi/schedule ------------------------------------------------------------ *
 * One "task" per context, a one-shot BH standing in for QEMU's coroutine. Each time it
 * runs it takes a task parked in another context's slot (to_schedule[n], trying the
 * contexts from a random one on) and schedules it to run again in that context, then
 * parks itself in to_schedule[id]. If it finds no parked task (a retry) it runs again
 * instead of parking. Three tasks start running and two parked, and each run keeps that
 * count, so the traffic never dies out (QEMU's coroutines may all end up parked).
 * finish_cb stops a context's task and wakes it one last time if it is parked.
 */

#define RUNNING_TASKS 3

typedef struct {
    int home;
} Task;

static Task tasks[NUM_CONTEXTS];
static Task *to_schedule[NUM_CONTEXTS];
static bool stop[NUM_CONTEXTS];
static int count_retry, count_here, count_other;

static void task_cb(void *opaque);

static bool schedule_next(int n)
{
    Task *t = g_atomic_pointer_exchange(&to_schedule[n], NULL);

    if (t == NULL) {
        g_atomic_int_inc(&count_retry);
        return false;
    }
    g_assert_cmpint(t->home, ==, n);
    if (n == id) {
        g_atomic_int_inc(&count_here);
    } else {
        g_atomic_int_inc(&count_other);
    }
    aio_bh_schedule_oneshot(ctx[n], task_cb, t);
    return true;
}

static void task_cb(void *opaque)
{
    Task *self = opaque;
    int first, i;

    g_assert_cmpint(self->home, ==, id);
    /* Whoever woke us took us out of the slot. */
    g_assert(g_atomic_pointer_get(&to_schedule[id]) == NULL);
    if (stop[id]) {
        return;
    }
    first = g_random_int_range(0, NUM_CONTEXTS); /* g_random: thread-safe */
    for (i = 0; i < NUM_CONTEXTS; i++) {
        int n = (first + i) % NUM_CONTEXTS;
        if (n != id && schedule_next(n)) {
            /* Park, published for the others (g_atomic: a full barrier). */
            g_atomic_pointer_set(&to_schedule[id], self);
            return;
        }
    }
    aio_bh_schedule_oneshot(ctx[id], task_cb, self);
}

static void finish_cb(void *opaque)
{
    (void)opaque;
    stop[id] = true;
    schedule_next(id);
}

static void test_multi_schedule(void)
{
    int i;

    count_retry = count_here = count_other = 0;
    create_aio_contexts();
    for (i = 0; i < NUM_CONTEXTS; i++) {
        tasks[i].home = i;
        stop[i] = false;
        to_schedule[i] = i < RUNNING_TASKS ? NULL : &tasks[i];
    }
    for (i = 0; i < RUNNING_TASKS; i++) {
        aio_bh_schedule_oneshot(ctx[i], task_cb, &tasks[i]);
    }

    g_usleep(SCHEDULE_MS * 1000);

    for (i = 0; i < NUM_CONTEXTS; i++) {
        ctx_run(i, finish_cb, NULL);
        /* Nobody parks in slot i any more. */
        g_assert(g_atomic_pointer_get(&to_schedule[i]) == NULL);
    }
    join_aio_contexts();
    g_test_message("scheduled %d, queued %d, retry %d, total %d",
                   count_other, count_here, count_retry,
                   count_here + count_other + count_retry);
    g_assert_cmpint(count_here + count_other, >, 0);
}

/* ---- /aio/multi/ping-pong: one-shot BHs bouncing between two contexts --------------- */

static int bounces;
static int pong_done;

static void bounce_cb(void *opaque)
{
    (void)opaque;
    if (++bounces == PING_PONGS) {
        g_atomic_int_set(&pong_done, 1);
        aio_wait_kick();
        return;
    }
    /* To the other context; each bounce runs after the previous one, so the plain
     * counter is handed over with the BH (scheduling publishes the writes before it). */
    aio_bh_schedule_oneshot(ctx[id == 0 ? 1 : 0], bounce_cb, NULL);
}

static void test_multi_ping_pong(void)
{
    create_aio_contexts();
    bounces = 0;
    pong_done = 0;
    aio_bh_schedule_oneshot(ctx[0], bounce_cb, NULL);
    /* The main thread polls its own context until kicked. */
    AIO_WAIT_WHILE(ctx[0], !g_atomic_int_get(&pong_done));
    g_assert_cmpint(bounces, ==, PING_PONGS);
    join_aio_contexts();
}

/* ---- /aio/multi/wait-kick ------------------------------------------------------------ */

static int flag;

static void set_flag_cb(void *opaque)
{
    (void)opaque;
    g_atomic_int_set(&flag, 1);
    aio_wait_kick();
}

static void test_multi_wait_kick(void)
{
    bool waited;

    create_aio_contexts();
    flag = 0;
    g_assert(!AIO_WAIT_WHILE(ctx[1], false));   /* nothing to wait for */
    aio_bh_schedule_oneshot(ctx[1], set_flag_cb, NULL);
    waited = AIO_WAIT_WHILE(ctx[1], !g_atomic_int_get(&flag));
    (void)waited; /* it may have been set before the first check */
    g_assert_cmpint(flag, ==, 1);
    join_aio_contexts();
}

/* ---- /aio/multi/timer: a timer on an IOThread fires in that thread ---------------- */

typedef struct {
    QEMUTimer *timer;
    int home;
    int runs;
} RemoteTimer;

static void remote_timer_cb(void *opaque)
{
    RemoteTimer *t = opaque;

    g_assert_cmpint(id, ==, t->home);
    g_atomic_int_inc(&t->runs);
    if (g_atomic_int_get(&t->runs) < 3) {
        timer_mod_ns(t->timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 2 * SCALE_MS);
    } else {
        aio_wait_kick();
    }
}

static void test_multi_timer(void)
{
    RemoteTimer t = { .home = 2, .runs = 0 };

    create_aio_contexts();
    t.timer = aio_timer_new(ctx[2], QEMU_CLOCK_REALTIME, SCALE_MS, remote_timer_cb, &t);
    /* Armed from the main thread, fires in IOThread 2. */
    timer_mod(t.timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 2);
    AIO_WAIT_WHILE(ctx[2], g_atomic_int_get(&t.runs) < 3);
    g_assert(!timer_pending(t.timer));
    timer_free(t.timer);
    join_aio_contexts();
}

/* ---- /aio/multi/gmaincontext: GLib sources in an IOThread --------------------------- */

static int idle_runs;

static gboolean idle_cb(gpointer opaque)
{
    (void)opaque;
    g_assert_cmpint(id, ==, 3);
    g_atomic_int_inc(&idle_runs);
    aio_wait_kick();
    return G_SOURCE_REMOVE;
}

static void test_multi_gmaincontext(void)
{
    GMainContext *gctx;
    GSource *idle;

    create_aio_contexts();
    idle_runs = 0;
    gctx = iothread_get_g_main_context(threads[3]);
    g_assert(gctx != NULL);
    g_assert(iothread_get_g_main_context(threads[3]) == gctx);

    idle = g_idle_source_new();
    g_source_set_callback(idle, idle_cb, NULL, NULL);
    g_source_attach(idle, gctx);
    g_source_unref(idle);
    AIO_WAIT_WHILE(ctx[3], g_atomic_int_get(&idle_runs) == 0);

    /* The AioContext keeps running under the GLib loop. */
    ctx_run(3, set_id_cb, &(int){ 3 });
    join_aio_contexts();
}

int main(int argc, char **argv)
{
    qemu_init_main_loop(&error_abort);

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/aio/multi/lifecycle", test_lifecycle);
    g_test_add_func("/aio/multi/schedule", test_multi_schedule);
    g_test_add_func("/aio/multi/ping-pong", test_multi_ping_pong);
    g_test_add_func("/aio/multi/wait-kick", test_multi_wait_kick);
    g_test_add_func("/aio/multi/timer", test_multi_timer);
    g_test_add_func("/aio/multi/gmaincontext", test_multi_gmaincontext);
    return g_test_run();
}
