/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-context thread pool through the QEMU-compatible C API
 * (reference/qemu-semantics.md §3.4): submit, submit-aio, submit-many, and cancellation,
 * synchronous and asynchronous. Completions run in the main thread, from aio_poll() or
 * (the /thread-pool/gsource/... variants) from g_main_context_iteration().
 *
 * QEMU's cancel test relies on timing (2 s jobs, a 1 s sleep). Here the jobs wait at a
 * gate instead: once all 64 workers hold one, the other 36 are certainly still queued,
 * so exactly those are cancellable; the gate opens after they are cancelled.
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/block.h"
#include "block/thread-pool.h"
#include "qapi/error.h"

#include <pthread.h>

#define NJOBS 100
#define MAX_WORKERS 64 /* the pool's default maximum */

static AioContext *ctx;
static ThreadPool *pool;
static int active; /* completions still expected; only the main thread touches it */

typedef struct {
    BlockAIOCB *aiocb;
    int n;   /* 0 queued, 1 started, 3 (1|2) finished, 4 cancelled before starting */
    int ret;
} Job;

/* Returns 0 and leaves n at 1 the first time (n is read atomically by the test). */
static int count_job(void *opaque)
{
    Job *job = opaque;

    return g_atomic_int_add(&job->n, 1);
}

static void job_done(void *opaque, int ret)
{
    Job *job = opaque;

    /* -ECANCELED: the test marked it before cancelling. */
    g_assert(job->ret == -EINPROGRESS || job->ret == -ECANCELED);
    job->ret = ret;
    job->aiocb = NULL;
    active--; /* completions run one at a time, in this thread */
}

static bool (*iterate_fn)(void);

static bool iterate_aio(void)
{
    return aio_poll(ctx, true);
}

static bool iterate_glib(void)
{
    return g_main_context_iteration(NULL, true);
}

/* ---- the gate -------------------------------------------------------------------------- *
 * pthread rather than GMutex/GCond: ThreadSanitizer cannot see GLib's futex-based locks. */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inside; /* jobs waiting at the gate */
    bool open;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.inside = 0;
    gate.open = false;
    pthread_mutex_unlock(&gate.lock);
}

static void gate_wait_for(int jobs)
{
    pthread_mutex_lock(&gate.lock);
    while (gate.inside < jobs) {
        pthread_cond_wait(&gate.cond, &gate.lock);
    }
    pthread_mutex_unlock(&gate.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

/* A job that, if it starts before being cancelled (n 0 -> 1), waits at the gate and then
 * finishes (n |= 2, so 3). */
static int gated_job(void *opaque)
{
    Job *job = opaque;

    if (g_atomic_int_compare_and_exchange(&job->n, 0, 1)) {
        pthread_mutex_lock(&gate.lock);
        gate.inside++;
        pthread_cond_broadcast(&gate.cond);
        while (!gate.open) {
            pthread_cond_wait(&gate.cond, &gate.lock);
        }
        pthread_mutex_unlock(&gate.lock);
        g_atomic_int_or(&job->n, 2);
    }
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void barrier_done(void *opaque, int ret)
{
    g_assert_cmpint(ret, ==, 0);
    *(bool *)opaque = true;
}

static void test_submit(void)
{
    Job job = { .n = 0 };
    bool barrier = false;

    /* One worker, so the barrier job below completes after this one. */
    aio_context_set_thread_pool_params(ctx, 0, 1, &error_abort);
    thread_pool_submit(pool, count_job, &job);
    /* No callback, but the completion still wakes the blocking poll. */
    while (g_atomic_int_get(&job.n) == 0) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(job.n, ==, 1);

    /* Completions run in completion order: once the barrier's ran, the callback-less
     * one has too (and freed its request). */
    thread_pool_submit_aio(pool, count_job, &(Job){ .n = 0 }, barrier_done, &barrier);
    while (!barrier) {
        aio_poll(ctx, true);
    }
    aio_context_set_thread_pool_params(ctx, 0, MAX_WORKERS, &error_abort);
}

static void test_submit_aio(void)
{
    Job job = { .n = 0, .ret = -EINPROGRESS };

    job.aiocb = thread_pool_submit_aio(pool, count_job, &job, job_done, &job);
    g_assert(job.aiocb != NULL);
    active = 1;
    /* Completions only run from the loop. */
    g_assert_cmpint(job.ret, ==, -EINPROGRESS);
    while (job.ret == -EINPROGRESS) {
        iterate_fn();
    }
    g_assert_cmpint(active, ==, 0);
    g_assert_cmpint(job.n, ==, 1);
    g_assert_cmpint(job.ret, ==, 0);
    g_assert(job.aiocb == NULL);
}

static void test_submit_many(void)
{
    Job jobs[NJOBS];
    int i;

    /* More jobs than workers. */
    for (i = 0; i < NJOBS; i++) {
        jobs[i].n = 0;
        jobs[i].ret = -EINPROGRESS;
        jobs[i].aiocb = thread_pool_submit_aio(pool, count_job, &jobs[i], job_done, &jobs[i]);
    }
    active = NJOBS;
    while (active > 0) {
        iterate_fn();
    }
    for (i = 0; i < NJOBS; i++) {
        g_assert_cmpint(jobs[i].n, ==, 1);
        g_assert_cmpint(jobs[i].ret, ==, 0);
        g_assert(jobs[i].aiocb == NULL);
    }
}

static void cancel(Job *job, bool sync)
{
    if (sync) {
        bdrv_aio_cancel(job->aiocb);
    } else {
        bdrv_aio_cancel_async(job->aiocb);
    }
}

static void do_test_cancel(bool sync)
{
    Job jobs[NJOBS];
    int i, cancelled = 0;

    iterate_fn = iterate_aio;
    test_submit_many(); /* leaves the workers started and idle */
    gate_reset();

    for (i = 0; i < NJOBS; i++) {
        jobs[i].n = 0;
        jobs[i].ret = -EINPROGRESS;
        jobs[i].aiocb = thread_pool_submit_aio(pool, gated_job, &jobs[i], job_done, &jobs[i]);
    }
    active = NJOBS;
    aio_notify(ctx);
    aio_poll(ctx, false);
    g_assert_cmpint(active, ==, NJOBS);       /* nothing can have completed */

    /* Every worker holds a job at the gate; the rest are still queued. */
    gate_wait_for(MAX_WORKERS);
    g_assert_cmpint(active, ==, NJOBS);

    /* Cancel what has not started (n 0 -> 4 wins against a worker's 0 -> 1). */
    for (i = 0; i < NJOBS; i++) {
        if (g_atomic_int_compare_and_exchange(&jobs[i].n, 0, 4)) {
            jobs[i].ret = -ECANCELED;
            cancel(&jobs[i], sync);
            cancelled++;
        }
    }
    g_assert_cmpint(cancelled, ==, NJOBS - MAX_WORKERS);
    g_assert_cmpint(active, >=, MAX_WORKERS);

    if (sync) {
        /* A synchronous cancel of a running job waits for it: let them finish. */
        gate_open();
    }
    /* Running jobs cannot be cancelled; they complete normally. */
    for (i = 0; i < NJOBS; i++) {
        if (jobs[i].aiocb != NULL && g_atomic_int_get(&jobs[i].n) < 4) {
            cancel(&jobs[i], sync);
        }
    }
    if (!sync) {
        gate_open();
    }

    while (active > 0) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(active, ==, 0);
    for (i = 0; i < NJOBS; i++) {
        g_assert(jobs[i].aiocb == NULL);      /* every callback ran exactly once */
        switch (jobs[i].n) {
        case 3:                               /* ran to completion */
            g_assert_cmpint(jobs[i].ret, ==, 0);
            break;
        case 4:                               /* never started */
            g_assert_cmpint(jobs[i].ret, ==, -ECANCELED);
            break;
        case 0:
            g_error("job %d neither cancelled nor started", i);
            break;
        default:
            g_error("job %d stopped while running (n = %d)", i, jobs[i].n);
            break;
        }
    }
}

static void test_cancel(void)
{
    do_test_cancel(true);
}

static void test_cancel_async(void)
{
    do_test_cancel(false);
}

/* A request kept with qemu_aio_ref() outlives its completion; the pool's AIOCBInfo
 * names the context that bdrv_aio_cancel() polls. (As in QEMU, bdrv_aio_cancel() on a
 * request that already completed would wait forever.) */
static void test_aiocb_ref(void)
{
    Job job = { .n = 0, .ret = -EINPROGRESS };
    BlockAIOCB *acb;

    acb = thread_pool_submit_aio(pool, count_job, &job, job_done, &job);
    qemu_aio_ref(acb);
    g_assert(acb->aiocb_info->get_aio_context(acb) == ctx);
    active = 1;
    while (active > 0) {
        aio_poll(ctx, true);
    }
    g_assert(job.aiocb == NULL);
    g_assert_cmpint(acb->refcnt, ==, 1);      /* only ours is left */
    qemu_aio_unref(acb);
    g_assert_cmpint(job.ret, ==, 0);
}

static void test_bad_params(void)
{
    Error *err = NULL;

    aio_context_set_thread_pool_params(ctx, 4, 2, &err);
    g_assert(err != NULL);
    g_assert(strstr(error_get_pretty(err), "thread-pool") != NULL);
    error_free_or_abort(&err);
    aio_context_set_thread_pool_params(ctx, 0, 0, &err);
    error_free_or_abort(&err);
    aio_context_set_thread_pool_params(ctx, 0, MAX_WORKERS, &error_abort);
    g_assert(thread_pool_new(ctx) == pool);   /* one pool per context */
    thread_pool_update_params(pool, ctx);
    thread_pool_free(pool);
}

static void set_aio(void)
{
    iterate_fn = iterate_aio;
}

static void set_glib(void)
{
    iterate_fn = iterate_glib;
}

static void test_submit_aio_poll(void)
{
    set_aio();
    test_submit_aio();
}

static void test_submit_many_poll(void)
{
    set_aio();
    test_submit_many();
}

static void test_submit_aio_glib(void)
{
    set_glib();
    test_submit_aio();
}

static void test_submit_many_glib(void)
{
    set_glib();
    test_submit_many();
}

/* Destroying the context waits until no worker serves the pool; the threads may still
 * be finishing their exit. Wait for that too (valgrind would report their stacks).
 * Workers are the threads named "aio-pool-N". */
static int pool_threads_alive(void)
{
    GDir *dir = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;
    int alive = 0;

    if (dir == NULL) {
        return 0;
    }
    while ((tid = g_dir_read_name(dir)) != NULL) {
        char *path = g_strdup_printf("/proc/self/task/%s/comm", tid);
        char *comm = NULL;

        if (g_file_get_contents(path, &comm, NULL, NULL) &&
            g_str_has_prefix(comm, "aio-pool-")) {
            alive++;
        }
        g_free(comm);
        g_free(path);
    }
    g_dir_close(dir);
    return alive;
}

static void wait_for_workers_to_exit(void)
{
    int tries;

    for (tries = 0; tries < 5000 && pool_threads_alive() > 0; tries++) {
        g_usleep(1000);
    }
}

int main(int argc, char **argv)
{
    GSource *src;
    int ret;

    /* A context of our own, made current and attached to GLib's default context as
     * qemu_init_main_loop() does with the main one (QEMU's test uses that), so that it
     * can be destroyed at the end: its pool's idle workers then exit instead of
     * outliving the test (valgrind would report their stacks). */
    ctx = aio_context_new(&error_abort);
    qemu_set_current_aio_context(ctx);
    src = aio_get_g_source(ctx);
    g_source_attach(src, NULL);
    pool = aio_get_thread_pool(ctx);

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/thread-pool/submit", test_submit);
    g_test_add_func("/thread-pool/submit-aio", test_submit_aio_poll);
    g_test_add_func("/thread-pool/submit-many", test_submit_many_poll);
    g_test_add_func("/thread-pool/cancel", test_cancel);
    g_test_add_func("/thread-pool/cancel-async", test_cancel_async);
    g_test_add_func("/thread-pool/aiocb-ref", test_aiocb_ref);
    g_test_add_func("/thread-pool/params", test_bad_params);
    g_test_add_func("/thread-pool/gsource/submit-aio", test_submit_aio_glib);
    g_test_add_func("/thread-pool/gsource/submit-many", test_submit_many_glib);
    ret = g_test_run();

    g_source_destroy(src);
    g_source_unref(src);
    aio_context_unref(ctx);
    wait_for_workers_to_exit();
    return ret;
}
