// SPDX-License-Identifier: LGPL-2.1-or-later
// C++20 coroutines on the AioContext model: aio::Task<T>, spawn(), and the awaitables
// that suspend a task until its context, a timer, an fd or the thread pool resumes it.
//
//   aio::Task<int> fetch(aio::Context& ctx, int fd) {
//       co_await aio::readable(fd);                       // an fd handler resumes us
//       int n = co_await ctx.thread_pool().run([] { return parse(); });  // on a worker
//       co_await aio::sleep_for(1'000'000);               // a timer, 1 ms
//       co_return n;
//   }
//   aio::spawn(ctx, fetch(ctx, fd));                       // runs in ctx's home thread
//
// A task runs in its home context's thread: the context it was spawned on, or the
// awaiting task's, until it co_awaits switch_to(other).
//
// Thread safety: spawn() and everything that wakes a coroutine (CoMutex::unlock,
// CoQueue::wake_*) may be called from any thread. A Task object itself is not shared.
#pragma once

#include <aio/context.hpp>
#include <aio/detail/co_core.hpp>
#include <aio/thread_pool.hpp>
#include <aio/timer.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>
#include <optional>
#include <variant>

namespace aio {

template <class T = void>
class Task;

// A reference to a coroutine, for the low-level co_schedule() below.
struct CoHandle {
    detail::PromiseBase* promise = nullptr;
};

namespace detail {

template <class T>
struct TaskPromiseStorage {
    std::variant<std::monostate, T, std::exception_ptr> result;
    void return_value(T v) { result.template emplace<1>(std::move(v)); }
    T take()
    {
        if (result.index() == 2) {
            std::rethrow_exception(std::get<2>(result));
        }
        return std::move(std::get<1>(result));
    }
};

template <>
struct TaskPromiseStorage<void> {
    std::variant<std::monostate, std::monostate, std::exception_ptr> result;
    void return_void() {}
    void take()
    {
        if (result.index() == 2) {
            std::rethrow_exception(std::get<2>(result));
        }
    }
};

template <class P>
concept AioPromise = std::is_base_of_v<PromiseBase, P>;

}  // namespace detail

// A lazy, move-only coroutine: it starts when awaited or spawned. Its value or exception
// reaches the awaiter. Destroying a Task that never started destroys the coroutine.
template <class T>
class [[nodiscard]] Task {
public:
    struct promise_type : detail::PromiseBase, detail::TaskPromiseStorage<T> {
        std::coroutine_handle<> continuation;
        bool detached = false;

        promise_type() { self = std::coroutine_handle<promise_type>::from_promise(*this); }
        Task get_return_object() noexcept
        {
            return Task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct FinalAwaiter {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept
            {
                promise_type& p = h.promise();
                if (p.detached) {
                    if (p.result.index() == 2) {
                        detail::report_detached_task_exception(std::get<2>(p.result));
                    }
                    h.destroy();
                    return std::noop_coroutine();
                }
                // Symmetric transfer: resuming the awaiter costs no stack.
                return p.continuation ? p.continuation : std::noop_coroutine();
            }
            void await_resume() noexcept {}
        };
        FinalAwaiter final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept
        {
            this->result.template emplace<2>(std::current_exception());
        }
    };

    Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Task& operator=(Task&& o) noexcept
    {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() { reset(); }

    // Starts the task in ctx's home thread while this object keeps owning it: done()
    // tells when it finished, result() gives its value (or rethrows). Destroying a
    // started task that has not finished is allowed while it awaits sleep_for(),
    // readable()/writable() or pool.run() (those are cancelled), not while it is queued
    // to run (after yield(), switch_to() or a wake-up). Any thread.
    void start(Context& ctx) noexcept
    {
        h_.promise().home = &ctx;
        detail::co_schedule(ctx, &h_.promise(), "start");
    }
    bool done() const noexcept { return h_ && h_.done(); }
    T result() { return h_.promise().take(); }

    bool await_ready() const noexcept { return false; }
    template <class P>
        requires std::is_base_of_v<detail::PromiseBase, P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiter) noexcept
    {
        h_.promise().continuation = awaiter;
        h_.promise().home = awaiter.promise().home;
        return h_;
    }
    T await_resume() { return h_.promise().take(); }

private:
    template <class U>
    friend void spawn(Context& ctx, Task<U>&& task);
    explicit Task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    void reset() noexcept
    {
        if (h_) {
            std::exchange(h_, {}).destroy();
        }
    }
    std::coroutine_handle<promise_type> h_;
};

// Starts `task` in ctx's home thread (through ctx's coroutine queue) and forgets it: an
// exception escaping it is reported with g_warning. Any thread.
template <class T>
void spawn(Context& ctx, Task<T>&& task)
{
    auto h = std::exchange(task.h_, {});
    h.promise().detached = true;
    h.promise().home = &ctx;
    detail::co_schedule(ctx, &h.promise(), "spawn");
}

namespace detail {
struct YieldAwaiter {
    bool await_ready() const noexcept { return false; }
    template <AioPromise P>
    void await_suspend(std::coroutine_handle<P> h) noexcept
    {
        co_schedule(*h.promise().home, &h.promise(), "yield");
    }
    void await_resume() const noexcept {}
};

struct SwitchAwaiter {
    Context& to;
    bool await_ready() const noexcept { return false; }
    template <AioPromise P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept
    {
        if (h.promise().home == &to) {
            return false;  // already there
        }
        h.promise().home = &to;
        co_schedule(to, &h.promise(), "switch_to");
        return true;
    }
    void await_resume() const noexcept {}
};

struct SleepAwaiter {
    std::int64_t ns;
    Clock clock;
    Timer timer{};
    bool await_ready() const noexcept { return ns <= 0; }
    template <AioPromise P>
    void await_suspend(std::coroutine_handle<P> h)
    {
        PromiseBase* p = &h.promise();
        timer = Timer(*p->home, clock, [p] { co_enter(p); }, Scale::ns, "sleep_for");
        timer.arm_after(ns);
    }
    void await_resume() const noexcept {}
};
}  // namespace detail

// Gives the context a turn: the task is requeued behind everything already scheduled.
inline detail::YieldAwaiter yield() noexcept { return {}; }

// Moves the task to `ctx`'s home thread. It is never resumed there before it has
// suspended here: C++ calls await_suspend only once the coroutine is suspended.
inline detail::SwitchAwaiter switch_to(Context& ctx) noexcept { return {ctx}; }

// Suspends for `ns` nanoseconds on `clock` (never less). Built on aio::Timer.
inline detail::SleepAwaiter sleep_for(std::int64_t ns, Clock clock = Clock::realtime)
{
    return {ns, clock};
}

namespace detail {
struct FdAwaiter {
    int fd;
    bool write;
    Context* ctx = nullptr;  // set while the fd is watched for us
    FdAwaiter(int f, bool w) noexcept : fd(f), write(w) {}
    FdAwaiter(FdAwaiter&& o) noexcept : fd(o.fd), write(o.write), ctx(std::exchange(o.ctx, nullptr)) {}
    ~FdAwaiter()
    {
        if (ctx != nullptr) {
            ctx->clear_fd_handler(fd);  // the task was destroyed while waiting
        }
    }
    bool await_ready() const noexcept { return false; }
    template <AioPromise P>
    void await_suspend(std::coroutine_handle<P> h)
    {
        PromiseBase* p = &h.promise();
        ctx = p->home;
        auto resume = [this, p] {
            std::exchange(ctx, nullptr)->clear_fd_handler(fd);  // one-shot
            co_enter(p);
        };
        FdHandlers hs;
        (write ? hs.write : hs.read) = std::move(resume);
        try {
            ctx->set_fd_handler(fd, std::move(hs));
        } catch (...) {
            ctx = nullptr;
            throw;  // a bad fd: rethrown at the co_await
        }
    }
    void await_resume() const noexcept {}
};
}  // namespace detail

// Suspends until fd is readable (or HUP/ERR). The task's context watches fd meanwhile;
// the fd must have no other handler on that context.
inline detail::FdAwaiter readable(int fd) noexcept { return detail::FdAwaiter(fd, false); }
// Suspends until fd is writable (or ERR).
inline detail::FdAwaiter writable(int fd) noexcept { return detail::FdAwaiter(fd, true); }

// co_await pool.run(fn) — see ThreadPool::run.
namespace detail {
template <class R>
struct PoolRunState {
    std::optional<Result<R>> result;
    PromiseBase* waiter = nullptr;  // null once the awaiting task is gone
};

template <class Fn>
struct PoolRunAwaiter {
    using R = std::invoke_result_t<Fn&>;
    ThreadPool& pool;
    Fn fn;
    std::shared_ptr<PoolRunState<R>> state = std::make_shared<PoolRunState<R>>();
    JobHandle job{};

    PoolRunAwaiter(ThreadPool& p, Fn f) : pool(p), fn(std::move(f)) {}
    PoolRunAwaiter(PoolRunAwaiter&&) = default;
    ~PoolRunAwaiter()
    {
        // The awaiting task was destroyed while suspended: cancel the job if it has not
        // started, and make sure its completion does not resume a dead coroutine.
        if (state && state->waiter != nullptr) {
            state->waiter = nullptr;
            job.cancel_async();
        }
    }

    bool await_ready() const noexcept { return false; }
    template <AioPromise P>
    void await_suspend(std::coroutine_handle<P> h)
    {
        state->waiter = &h.promise();
        job = pool.submit(std::move(fn), [st = state](Result<R> r) {
            st->result.emplace(std::move(r));
            if (PromiseBase* p = std::exchange(st->waiter, nullptr)) {
                co_enter(p);  // completions run in the pool's context: the task's home
            }
        });
    }
    R await_resume() { return state->result->value(); }
};
}  // namespace detail

template <class Fn>
auto ThreadPool::run(Fn&& fn)
{
    return detail::PoolRunAwaiter<std::decay_t<Fn>>{*this, std::forward<Fn>(fn)};
}

namespace detail {
struct CurrentAwaiter {
    PromiseBase* p = nullptr;
    bool await_ready() const noexcept { return false; }
    template <AioPromise P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept
    {
        p = &h.promise();
        return false;  // never actually suspends
    }
    CoHandle await_resume() const noexcept { return CoHandle{p}; }
};
}  // namespace detail
inline detail::CurrentAwaiter current_coroutine() noexcept { return {}; }

// QEMU's aio_co_schedule: queue a coroutine (suspended, or about to suspend) to run in
// ctx's home thread. Scheduling it again before it ran aborts, naming both schedulers.
// Any thread.
inline void co_schedule(Context& ctx, CoHandle co, const char* tag = "co_schedule") noexcept
{
    co.promise->home = &ctx;
    detail::co_schedule(ctx, co.promise, tag);
}

}  // namespace aio
