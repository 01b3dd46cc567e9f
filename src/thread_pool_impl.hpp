// SPDX-License-Identifier: LGPL-2.1-or-later
// Private: the thread pool's state.
#pragma once

#include <aio/thread_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

namespace aio {

class ContextImpl;
struct BhNode;

// What workers share with the pool object. Workers hold a shared_ptr, so a worker that
// drops the last context reference (and so destroys the pool) can still leave cleanly.
struct PoolCore {
    std::mutex mutex;
    std::condition_variable request_cv;  // work queued, limits changed, or shutdown
    std::condition_variable stopped_cv;  // a worker exited
    // Guarded by mutex:
    detail::PoolJob* queue_head = nullptr;  // FIFO of queued jobs (doubly linked)
    detail::PoolJob* queue_tail = nullptr;
    int queued = 0;
    int cur = 0;   // workers alive or being started
    int idle = 0;  // workers waiting for work
    int min = 0;
    int max = 64;
    int next_id = 0;
    bool shutdown = false;
    // Finished jobs, pushed by workers (lock-free stack), taken by the completion BH.
    std::atomic<detail::PoolJob*> done{nullptr};
    BhNode* completion_bh = nullptr;  // valid until shutdown
};

class ThreadPoolImpl final : public ThreadPool {
public:
    explicit ThreadPoolImpl(ContextImpl* ctx);
    ~ThreadPoolImpl();

    static ThreadPoolImpl* from(ThreadPool* p) noexcept { return static_cast<ThreadPoolImpl*>(p); }

    JobHandle enqueue(detail::PoolJob* job);
    bool cancel_async(detail::PoolJob* job) noexcept;
    void set_limits(int min, int max);
    void run_completions() noexcept;  // the completion BH, home thread

    ContextImpl* const ctx_;
    std::shared_ptr<PoolCore> core_ = std::make_shared<PoolCore>();
    std::deque<detail::PoolJob*> ready_;  // home thread: completions taken, not yet run

private:
    // Starts one worker; core->cur was already incremented for it. Requires no lock.
    void start_worker();
};

}  // namespace aio
