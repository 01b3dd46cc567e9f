// SPDX-License-Identifier: LGPL-2.1-or-later
// The per-context thread pool.
//
// Workers are started by the thread that submits (or raises min): a std::thread inherits
// that thread's CPU affinity, which for the usual submitter, the home thread, is what
// QEMU gets by starting workers from a BH; doing it directly means a job never waits for
// the home thread to run a BH first, so work submitted while the home thread is blocked
// (a synchronous wait elsewhere) still starts.
#include "thread_pool_impl.hpp"

#include "context_impl.hpp"

#include <glib.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <pthread.h>

namespace aio {

namespace {

using detail::PoolJob;
constexpr auto kIdleTimeout = std::chrono::seconds(10);

// The pool a worker thread serves, so destruction from inside a job knows not to wait
// for itself.
thread_local const PoolCore* tl_worker_of = nullptr;

void unlink_queued(PoolCore& c, PoolJob* j) noexcept
{
    (j->prev != nullptr ? j->prev->next : c.queue_head) = j->next;
    (j->next != nullptr ? j->next->prev : c.queue_tail) = j->prev;
    j->prev = j->next = nullptr;
    --c.queued;
}

// Hands a finished (or cancelled) job to the home thread. Requires the pool lock, so it
// cannot race with shutdown deleting the completion BH.
void push_done_locked(PoolCore& c, PoolJob* j) noexcept
{
    PoolJob* head = c.done.load(std::memory_order_relaxed);
    do {
        j->next = head;
    } while (!c.done.compare_exchange_weak(head, j, std::memory_order_release,
                                           std::memory_order_relaxed));
    // Many workers finishing together cost one wake-up: a schedule that finds the BH
    // already pending does not notify again.
    ContextImpl::bh_enqueue(c.completion_bh, kBhScheduled);
}

void worker_main(std::shared_ptr<PoolCore> core, int id) noexcept
{
    char name[16];
    std::snprintf(name, sizeof name, "aio-pool-%d", id);
    pthread_setname_np(pthread_self(), name);
    tl_worker_of = core.get();

    PoolCore& c = *core;
    std::unique_lock lk(c.mutex);
    for (;;) {
        if (c.shutdown) {
            break;
        }
        if (c.cur > c.max) {
            break;  // surplus after set_limits(); cur drops below, so others stay
        }
        if (c.queue_head == nullptr) {
            ++c.idle;
            const bool woken = c.request_cv.wait_for(lk, kIdleTimeout, [&] {
                return c.queue_head != nullptr || c.shutdown || c.cur > c.max;
            });
            --c.idle;
            if (!woken && c.cur > c.min) {
                break;  // idle for 10 s and not needed for min
            }
            continue;
        }
        PoolJob* j = c.queue_head;
        unlink_queued(c, j);
        j->state = PoolJob::State::active;
        lk.unlock();
        j->run();  // noexcept: exceptions are caught into the job's result
        lk.lock();
        j->state = PoolJob::State::done;
        if (c.shutdown) {
            lk.unlock();
            j->unref();  // no completion runs once destruction has begun
            lk.lock();
        } else {
            push_done_locked(c, j);
        }
    }
    --c.cur;
    c.stopped_cv.notify_all();
    c.request_cv.notify_one();  // pass on a wake-up this thread may have consumed
    lk.unlock();
    tl_worker_of = nullptr;
}

}  // namespace

ThreadPoolImpl::ThreadPoolImpl(ContextImpl* ctx) : ctx_(ctx)
{
    core_->completion_bh =
        ctx_->new_bh([this] { run_completions(); }, "thread-pool-completion", 0);
}

ThreadPoolImpl::~ThreadPoolImpl()
{
    PoolCore& c = *core_;
    PoolJob* dropped = nullptr;
    {
        std::unique_lock lk(c.mutex);
        c.shutdown = true;
        // Queued work is dropped without a completion (the context is going away).
        while (c.queue_head != nullptr) {
            PoolJob* j = c.queue_head;
            unlink_queued(c, j);
            j->next = dropped;
            dropped = j;
        }
        c.request_cv.notify_all();
        // Running work is waited for. A worker that is destroying us from inside its job
        // (it dropped the last context reference) must not wait for itself.
        const int self = tl_worker_of == &c ? 1 : 0;
        c.stopped_cv.wait(lk, [&] { return c.cur == self; });
    }
    for (PoolJob* j = dropped; j != nullptr;) {
        PoolJob* next = j->next;
        j->unref();
        j = next;
    }
    for (PoolJob* j = c.done.exchange(nullptr, std::memory_order_acquire); j != nullptr;) {
        PoolJob* next = j->next;
        j->unref();
        j = next;
    }
    for (PoolJob* j : ready_) {
        j->unref();
    }
    ContextImpl::bh_enqueue(c.completion_bh, kBhDeleted);
}

void ThreadPoolImpl::start_worker()
{
    int id;
    {
        std::lock_guard lk(core_->mutex);
        id = core_->next_id++;
    }
    try {
        std::thread(worker_main, core_, id).detach();
    } catch (...) {  // EAGAIN (std::system_error) or bad_alloc for the thread's state
        std::lock_guard lk(core_->mutex);
        --core_->cur;
        core_->stopped_cv.notify_all();
        throw;
    }
}

JobHandle ThreadPoolImpl::enqueue(PoolJob* job)
{
    ctx_->check_not_forked("ThreadPool::submit");  // the workers live in the parent
    PoolCore& c = *core_;
    job->ref();  // the pool's reference, dropped after the completion ran
    bool spawn = false;
    {
        std::lock_guard lk(c.mutex);
        if (c.shutdown) {
            job->unref();
            job->unref();
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "aio::ThreadPool: submit while the context is being "
                                    "destroyed");
        }
        job->prev = c.queue_tail;
        (c.queue_tail != nullptr ? c.queue_tail->next : c.queue_head) = job;
        c.queue_tail = job;
        ++c.queued;
        // Start a worker when queued jobs outnumber idle workers.
        if (c.queued > c.idle && c.cur < c.max) {
            ++c.cur;
            spawn = true;
        }
    }
    c.request_cv.notify_one();
    if (spawn) {
        try {
            start_worker();
        } catch (...) {
            // No worker could start: if none is alive the job would wait forever.
            std::unique_lock lk(c.mutex);
            if (c.cur == 0 && job->state == PoolJob::State::queued) {
                unlink_queued(c, job);
                lk.unlock();
                job->unref();
                job->unref();
                throw;
            }
        }
    }
    return JobHandle(this, job);
}

bool ThreadPoolImpl::cancel_async(PoolJob* job) noexcept
{
    PoolCore& c = *core_;
    std::lock_guard lk(c.mutex);
    if (job->state != PoolJob::State::queued || c.shutdown) {
        return false;  // running or finished: it completes normally
    }
    unlink_queued(c, job);
    job->state = PoolJob::State::done;
    job->cancelled = true;
    push_done_locked(c, job);
    return true;
}

void ThreadPoolImpl::run_completions() noexcept
{
    PoolCore& c = *core_;
    for (;;) {
        if (ready_.empty()) {
            // acquire pairs with the workers' release push: the job's result is visible.
            PoolJob* j = c.done.exchange(nullptr, std::memory_order_acquire);
            if (j == nullptr) {
                return;
            }
            // The stack is newest-first; deliver in completion order.
            for (; j != nullptr; j = j->next) {
                ready_.push_front(j);
            }
        }
        PoolJob* j = ready_.front();
        ready_.pop_front();
        // If the callback nests poll() waiting for another finished job, the BH must be
        // scheduled for that poll to deliver it. Cancel afterwards: the loop above picks
        // up whatever is left.
        const bool more =
            !ready_.empty() || c.done.load(std::memory_order_relaxed) != nullptr;
        if (more) {
            ContextImpl::bh_enqueue(c.completion_bh, kBhScheduled);
        }
        j->complete(j->cancelled);
        j->completed.store(true, std::memory_order_release);
        if (more) {
            // seq_cst: the re-read of `done` above must not move before the cancel.
            c.completion_bh->flags.fetch_and(~kBhScheduled, std::memory_order_seq_cst);
        }
        j->unref();
    }
}

void ThreadPoolImpl::set_limits(int min, int max)
{
    if (min < 0 || max <= 0 || min > max) {
        throw std::invalid_argument("aio::ThreadPool: bad limits min=" + std::to_string(min) +
                                    " max=" + std::to_string(max) +
                                    " (need 0 <= min <= max and max > 0)");
    }
    int to_start = 0;
    {
        std::lock_guard lk(core_->mutex);
        core_->min = min;
        core_->max = max;
        if (core_->cur < min) {
            to_start = min - core_->cur;
            core_->cur = min;
        }
    }
    core_->request_cv.notify_all();  // surplus workers re-check cur > max and exit
    for (int i = 0; i < to_start; ++i) {
        start_worker();
    }
}

// --- the public face ---------------------------------------------------------------

JobHandle ThreadPool::enqueue(detail::PoolJob* job)
{
    return ThreadPoolImpl::from(this)->enqueue(job);
}

void ThreadPool::set_limits(int min, int max) { ThreadPoolImpl::from(this)->set_limits(min, max); }

int ThreadPool::min_threads() const noexcept
{
    auto* p = ThreadPoolImpl::from(const_cast<ThreadPool*>(this));
    std::lock_guard lk(p->core_->mutex);
    return p->core_->min;
}

int ThreadPool::max_threads() const noexcept
{
    auto* p = ThreadPoolImpl::from(const_cast<ThreadPool*>(this));
    std::lock_guard lk(p->core_->mutex);
    return p->core_->max;
}

int ThreadPool::thread_count() const noexcept
{
    auto* p = ThreadPoolImpl::from(const_cast<ThreadPool*>(this));
    std::lock_guard lk(p->core_->mutex);
    return p->core_->cur;
}

Context& ThreadPool::context() const noexcept
{
    return *ThreadPoolImpl::from(const_cast<ThreadPool*>(this))->ctx_;
}

void ThreadPool::report_detached_exception(std::exception_ptr e) noexcept
{
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception& ex) {
        g_warning("aio::ThreadPool: a fire-and-forget job threw: %s", ex.what());
    } catch (...) {
        g_warning("aio::ThreadPool: a fire-and-forget job threw a non-std exception");
    }
}

bool JobHandle::cancel_async() noexcept
{
    return job_ != nullptr && ThreadPoolImpl::from(pool_)->cancel_async(job_);
}

void JobHandle::cancel()
{
    if (job_ == nullptr) {
        return;
    }
    cancel_async();
    Context& ctx = pool_->context();
    while (!done()) {
        ctx.poll(true);
    }
}

}  // namespace aio
