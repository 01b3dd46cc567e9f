// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::ThreadPool: the per-context worker pool (QEMU's thread pool), self-locking.
//
// Work submitted from any thread runs on a worker; its completion callback runs in the
// context's home thread, batched: one bottom half delivers every completion that is ready
// when it runs (many completions, one wake-up). Workers start on demand (up to max,
// default 64), at least min stay (default 0), and an idle worker above min exits after
// 10 s.
//
// Thread safety: every member may be called from any thread, except JobHandle::cancel()
// (the synchronous one), which polls the context and so must run in its home thread.
// Completion callbacks run in the home thread and see every write the work function made.
#pragma once

#include <aio/export.hpp>
#include <aio/function.hpp>

#include <atomic>
#include <cerrno>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace aio {

class Context;
class ThreadPool;

namespace detail {

// One submitted job. The pool owns a reference until the completion ran; a JobHandle
// owns another. Subclassed per work/completion type by ThreadPool::submit.
struct AIO_EXPORT PoolJob {
    PoolJob() noexcept = default;
    PoolJob(const PoolJob&) = delete;
    PoolJob& operator=(const PoolJob&) = delete;
    virtual ~PoolJob() = default;

    virtual void run() noexcept = 0;                     // on a worker
    virtual void complete(bool cancelled) noexcept = 0;  // in the home thread

    void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref() noexcept
    {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete this;  // NOLINT(cppcoreguidelines-owning-memory): intrusive count
        }
    }

    // Pool bookkeeping (guarded by the pool's mutex unless noted).
    enum class State { queued, active, done };
    State state = State::queued;
    bool cancelled = false;
    PoolJob* prev = nullptr;  // request queue links
    PoolJob* next = nullptr;  // request queue link, then the done list link
    std::atomic<bool> completed{false};  // set in the home thread after complete()

private:
    std::atomic<int> refs_{1};
};

}  // namespace detail

// The outcome of a job: its value, its exception, or "cancelled" (ECANCELED).
template <class T>
class Result {
    using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

public:
    static Result cancelled_result() { return Result(Cancelled{}); }
    static Result from_exception(std::exception_ptr e) { return Result(std::move(e)); }
    template <class... A>
    static Result from_value(A&&... a)
    {
        Result r;
        r.v_.template emplace<0>(std::forward<A>(a)...);
        return r;
    }

    bool ok() const noexcept { return v_.index() == 0; }
    bool cancelled() const noexcept { return v_.index() == 2; }
    // ECANCELED if cancelled, EIO-like generic error if the job threw, else none.
    std::error_code error() const noexcept
    {
        if (cancelled()) {
            return std::make_error_code(std::errc::operation_canceled);
        }
        return v_.index() == 1 ? std::make_error_code(std::errc::io_error) : std::error_code{};
    }
    std::exception_ptr exception() const noexcept
    {
        return v_.index() == 1 ? std::get<1>(v_) : nullptr;
    }
    // The value; rethrows the job's exception, or throws system_error(ECANCELED).
    decltype(auto) value()
    {
        if (v_.index() == 1) {
            std::rethrow_exception(std::get<1>(v_));
        }
        if (v_.index() == 2) {
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "aio::ThreadPool job cancelled");
        }
        if constexpr (!std::is_void_v<T>) {
            return std::get<0>(v_);
        }
    }

private:
    struct Cancelled {};
    Result() = default;
    explicit Result(Cancelled) : v_(std::in_place_index<2>) {}
    explicit Result(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {}
    std::variant<Stored, std::exception_ptr, Cancelled> v_;
};

// A reference to a submitted job. Move-only; dropping it does not cancel the job.
class AIO_EXPORT JobHandle {
public:
    JobHandle() noexcept = default;
    JobHandle(JobHandle&& o) noexcept
        : pool_(std::exchange(o.pool_, nullptr)), job_(std::exchange(o.job_, nullptr))
    {
    }
    JobHandle& operator=(JobHandle&& o) noexcept
    {
        if (this != &o) {
            reset();
            pool_ = std::exchange(o.pool_, nullptr);
            job_ = std::exchange(o.job_, nullptr);
        }
        return *this;
    }
    JobHandle(const JobHandle&) = delete;
    JobHandle& operator=(const JobHandle&) = delete;
    ~JobHandle() { reset(); }

    // Removes the job if it has not started: its completion then runs once, cancelled.
    // Returns whether it was removed. Running or finished jobs are unaffected; calling it
    // twice or after completion is a no-op. Any thread.
    bool cancel_async() noexcept;
    // cancel_async(), then polls the context until the completion has run (a running job
    // is waited for). Home thread only.
    void cancel();
    // Whether the completion callback has run. Any thread.
    bool done() const noexcept
    {
        return job_ == nullptr || job_->completed.load(std::memory_order_acquire);
    }
    void reset() noexcept
    {
        if (job_ != nullptr) {
            std::exchange(job_, nullptr)->unref();
            pool_ = nullptr;
        }
    }

private:
    friend class ThreadPool;
    friend class ThreadPoolImpl;
    JobHandle(ThreadPool* p, detail::PoolJob* j) noexcept : pool_(p), job_(j) {}
    ThreadPool* pool_ = nullptr;
    detail::PoolJob* job_ = nullptr;
};

class AIO_EXPORT ThreadPool {
public:
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Runs work() on a worker, then done(Result<R>) in the home thread, exactly once
    // (also when cancelled). An exception from work() reaches done() in the Result.
    // Throws std::system_error if the pool is shutting down or no worker can be started.
    template <class Work, class Done>
        requires std::is_invocable_v<Work&> &&
                 std::is_invocable_v<Done&, Result<std::invoke_result_t<Work&>>>
    JobHandle submit(Work&& work, Done&& done)
    {
        using R = std::invoke_result_t<Work&>;
        struct Job final : detail::PoolJob {
            Job(Work&& w, Done&& d) : work(std::forward<Work>(w)), done(std::forward<Done>(d)) {}
            void run() noexcept override
            {
                try {
                    if constexpr (std::is_void_v<R>) {
                        work();
                        result.emplace(Result<R>::from_value());
                    } else {
                        result.emplace(Result<R>::from_value(work()));
                    }
                } catch (...) {
                    result.emplace(Result<R>::from_exception(std::current_exception()));
                }
            }
            void complete(bool cancelled) noexcept override
            {
                done(cancelled ? Result<R>::cancelled_result() : std::move(*result));
            }
            std::decay_t<Work> work;
            std::decay_t<Done> done;
            std::optional<Result<R>> result;
        };
        // The pool and the handle share it through PoolJob's intrusive count.
        return enqueue(
            std::make_unique<Job>(std::forward<Work>(work), std::forward<Done>(done)).release());
    }

    // Fire and forget: no completion. A job that throws is reported with g_warning.
    template <class Work>
        requires std::is_invocable_v<Work&>
    void submit(Work&& work)
    {
        submit(std::forward<Work>(work), [](auto&& r) {
            if (r.exception() != nullptr) {
                report_detached_exception(r.exception());
            }
        });
    }

    // co_await pool.run(fn): runs fn on a worker and resumes the awaiting task in the
    // pool's context with fn's result (or rethrows its exception). If the task is
    // destroyed before the job starts, the job is cancelled. Defined in <aio/task.hpp>.
    template <class Fn>
    auto run(Fn&& fn);

    // Sets the worker limits: 0 <= min <= max, max > 0. Starts workers up to min; surplus
    // workers exit. Throws std::invalid_argument naming both values otherwise.
    void set_limits(int min, int max);
    int min_threads() const noexcept;
    int max_threads() const noexcept;
    // Workers currently alive (a snapshot).
    int thread_count() const noexcept;

    Context& context() const noexcept;

protected:
    ThreadPool() = default;
    ~ThreadPool() = default;

private:
    friend class JobHandle;
    JobHandle enqueue(detail::PoolJob* job);
    static void report_detached_exception(std::exception_ptr e) noexcept;
};

}  // namespace aio
