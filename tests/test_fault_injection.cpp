// SPDX-License-Identifier: LGPL-2.1-or-later
// Fault injection for two rows of reference/reliability.md §3, by interposition in this
// test binary only (the library is unchanged; the definitions below win over libc's and
// libstdc++'s because the executable comes first in symbol lookup):
//   row 37  epoll_ctl() failing with ENOSPC (the fs.epoll.max_user_watches limit) or
//           ENOMEM: set_fd_handler() throws std::system_error naming the fd, nothing is
//           half-registered, and the same fd registers fine once the kernel agrees
//   row 47  allocation failure (a replaced global operator new that fails the n-th
//           allocation of this thread): schedule(), make_bh(), set_fd_handler() and
//           ThreadPool::submit() let std::bad_alloc propagate with nothing changed
//           (no callback runs, no handler or job is left behind, captures are freed);
//           each is tried failing at every allocation it makes, one after the other.
// Built in the plain and ASan+UBSan configurations, not under ThreadSanitizer (its static
// runtime defines operator new strongly, and it models epoll_ctl through the interceptor
// the definition here replaces). Suite `unit` only, so CI runs it in the plain build.
#include "test_helpers.hpp"

#include <aio/bottom_half.hpp>
#include <aio/context.hpp>
#include <aio/event_notifier.hpp>
#include <aio/thread_pool.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <system_error>

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

std::atomic<int> g_epoll_fail_errno{0};  // 0: pass through
std::atomic<int> g_epoll_fail_op{0};     // 0: every op, else EPOLL_CTL_ADD/MOD/DEL
std::atomic<long> g_epoll_calls{0};

// -1: off; n >= 0: the n-th allocation of this thread from now on fails (0 = the next).
thread_local long tl_alloc_fail_in = -1;

}  // namespace

extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event)
{
    g_epoll_calls.fetch_add(1, std::memory_order_relaxed);
    const int err = g_epoll_fail_errno.load(std::memory_order_relaxed);
    const int fail_op = g_epoll_fail_op.load(std::memory_order_relaxed);
    if (err != 0 && (fail_op == 0 || fail_op == op)) {
        errno = err;
        return -1;
    }
    return static_cast<int>(syscall(SYS_epoll_ctl, epfd, op, fd, event));
}

// noinline: inlined into a new-expression, GCC would pair our malloc/free with the
// new/delete expressions and warn (-Wmismatched-new-delete) about a correct program.
#define AIO_TEST_REPLACED __attribute__((noinline))

AIO_TEST_REPLACED void* operator new(std::size_t n)
{
    if (tl_alloc_fail_in >= 0 && tl_alloc_fail_in-- == 0) {
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(n != 0 ? n : 1)) {
        return p;
    }
    throw std::bad_alloc();
}
AIO_TEST_REPLACED void* operator new[](std::size_t n) { return ::operator new(n); }
AIO_TEST_REPLACED void operator delete(void* p) noexcept { std::free(p); }
AIO_TEST_REPLACED void operator delete[](void* p) noexcept { std::free(p); }
AIO_TEST_REPLACED void operator delete(void* p, std::size_t) noexcept { std::free(p); }
AIO_TEST_REPLACED void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace aio::test {
namespace {

// --- row 37 ---------------------------------------------------------------------------

struct EpollFailure {
    EpollFailure(int err, int op)
    {
        g_epoll_fail_op.store(op);
        g_epoll_fail_errno.store(err);
    }
    ~EpollFailure() { g_epoll_fail_errno.store(0); }
    EpollFailure(const EpollFailure&) = delete;
    EpollFailure& operator=(const EpollFailure&) = delete;
};

using EpollFaultTest = DriverTest;
AIO_INSTANTIATE_DRIVERS(EpollFaultTest);

TEST_P(EpollFaultTest, InterposerIsReached)
{
    const long before = g_epoll_calls.load();
    EventNotifier e;
    ctx->set_event_notifier(e, FdHandlers{.read = [] {}});
    ctx->clear_event_notifier(e);
    EXPECT_GT(g_epoll_calls.load(), before) << "the library's epoll_ctl calls bypass the "
                                               "interposer: this suite tests nothing";
}

TEST_P(EpollFaultTest, EnospcOnAddIsReportedAndNothingIsHalfRegistered)
{
    for (int err : {ENOSPC, ENOMEM}) {
        EventNotifier e;
        int runs = 0;
        {
            EpollFailure f(err, EPOLL_CTL_ADD);
            try {
                ctx->set_event_notifier(e, FdHandlers{.read = [&] { ++runs; }});
                ADD_FAILURE() << "set_fd_handler succeeded while epoll_ctl failed";
            } catch (const std::system_error& ex) {
                EXPECT_EQ(ex.code().value(), err);
                EXPECT_NE(std::string(ex.what()).find("set_fd_handler(fd=" +
                                                      std::to_string(e.fd()) + ")"),
                          std::string::npos)
                    << ex.what();
                EXPECT_NE(std::string(ex.what()).find("'test-ctx'"), std::string::npos)
                    << ex.what();
            }
        }
        // Not registered: a ready fd runs nothing.
        e.set();
        drain();
        EXPECT_EQ(runs, 0);
        // And nothing left behind: the same fd registers (a stale registration would make
        // the kernel answer EEXIST) and is dispatched.
        ctx->set_event_notifier(e, FdHandlers{.read = [&] {
                                    e.test_and_clear();
                                    ++runs;
                                }});
        iter(true);
        EXPECT_EQ(runs, 1);
        ctx->clear_event_notifier(e);
    }
}

TEST_P(EpollFaultTest, FailedReplacementKeepsTheOldHandler)
{
    EventNotifier e;
    int old_runs = 0;
    int new_runs = 0;
    ctx->set_event_notifier(e, FdHandlers{.read = [&] {
                                e.test_and_clear();
                                ++old_runs;
                            }});
    {
        EpollFailure f(ENOMEM, EPOLL_CTL_MOD);
        // read + write: a different event mask, so the kernel is asked to MOD
        EXPECT_THROW(ctx->set_fd_handler(e.fd(), FdHandlers{.read = [&] { ++new_runs; },
                                                            .write = [&] { ++new_runs; }}),
                     std::system_error);
    }
    e.set();
    iter(true);
    EXPECT_EQ(old_runs, 1);
    EXPECT_EQ(new_runs, 0);
    ctx->clear_event_notifier(e);
}

// --- row 47 ---------------------------------------------------------------------------

// Runs op() failing its k-th allocation, for k = 0, 1, ... until op() makes fewer than k
// allocations (it then succeeds). After each failure check_failed() verifies nothing
// changed; after the success check_ok() verifies the operation took effect. Returns the
// number of injected failures.
template <class Op, class Failed, class Ok>
int fail_each_allocation(Op op, Failed check_failed, Ok check_ok)
{
    for (long k = 0; k < 64; ++k) {
        bool threw = false;
        tl_alloc_fail_in = k;
        try {
            op();
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        const bool injected = tl_alloc_fail_in < 0;
        tl_alloc_fail_in = -1;
        if (threw) {
            EXPECT_TRUE(injected) << "bad_alloc without an injected failure";
            check_failed(k);
            continue;
        }
        EXPECT_FALSE(injected) << "allocation " << k << " failed but the call succeeded";
        check_ok();
        return static_cast<int>(k);
    }
    ADD_FAILURE() << "the operation never succeeded";
    return -1;
}

using AllocFaultTest = DriverTest;
AIO_INSTANTIATE_DRIVERS(AllocFaultTest);

TEST_P(AllocFaultTest, ScheduleLeavesNothingBehindWhenAllocationFails)
{
    auto token = std::make_shared<int>(0);
    int runs = 0;
    const int failures = fail_each_allocation(
        [&] {
            UniqueFunction<void()> fn = [&runs, token] { ++runs; };
            ctx->schedule(std::move(fn), "alloc-fail");
        },
        [&](long k) {
            EXPECT_EQ(token.use_count(), 1) << "the closure leaked (failure at " << k << ")";
            EXPECT_FALSE(iter(false)) << "something was scheduled (failure at " << k << ")";
            EXPECT_EQ(runs, 0);
        },
        [&] {
            EXPECT_TRUE(iter(false));
            EXPECT_EQ(runs, 1);
            EXPECT_EQ(token.use_count(), 1);
        });
    EXPECT_GE(failures, 1);
}

TEST_P(AllocFaultTest, MakeBhLeavesNothingBehindWhenAllocationFails)
{
    auto token = std::make_shared<int>(0);
    int runs = 0;
    BottomHalf bh;
    fail_each_allocation(
        [&] {
            UniqueFunction<void()> fn = [&runs, token] { ++runs; };
            bh = ctx->make_bh(std::move(fn), "alloc-fail");
        },
        [&](long) {
            EXPECT_FALSE(bh);
            EXPECT_EQ(token.use_count(), 1);
        },
        [&] {
            bh.schedule();
            EXPECT_TRUE(iter(false));
            EXPECT_EQ(runs, 1);
        });
    bh = BottomHalf();
    // A deleted BH is freed by the next BH pass, which under GLib needs a dispatch.
    ctx->schedule([] {});
    drain();
    EXPECT_EQ(token.use_count(), 1);
}

TEST_P(AllocFaultTest, SetFdHandlerLeavesNothingBehindWhenAllocationFails)
{
    EventNotifier e;
    auto token = std::make_shared<int>(0);
    int runs = 0;
    fail_each_allocation(
        [&] {
            FdHandlers h{.read = [&runs, &e, token] {
                e.test_and_clear();
                ++runs;
            }};
            ctx->set_event_notifier(e, std::move(h));
        },
        [&](long k) {
            EXPECT_EQ(token.use_count(), 1) << "failure at " << k;
            e.set();
            drain();
            EXPECT_EQ(runs, 0) << "a handler was registered (failure at " << k << ")";
            e.test_and_clear();
        },
        [&] {
            e.set();
            iter(true);
            EXPECT_EQ(runs, 1);
        });
    // Replacing it under failures keeps the old handler working.
    int new_runs = 0;
    fail_each_allocation(
        [&] {
            FdHandlers h{.read = [&new_runs, &e] {
                e.test_and_clear();
                ++new_runs;
            }};
            ctx->set_event_notifier(e, std::move(h));
        },
        [&](long k) {
            e.set();
            iter(true);
            EXPECT_EQ(new_runs, 0) << "failure at " << k;
        },
        [&] {
            e.set();
            iter(true);
            EXPECT_EQ(new_runs, 1);
        });
    ctx->clear_event_notifier(e);
    EXPECT_EQ(token.use_count(), 1);
}

TEST_P(AllocFaultTest, PoolSubmitLeavesNothingBehindWhenAllocationFails)
{
    ThreadPool& pool = ctx->thread_pool();
    auto token = std::make_shared<int>(0);
    std::atomic<int> work_runs{0};
    int done_runs = 0;
    JobHandle h;
    const int failures = fail_each_allocation(
        [&] {
            h = pool.submit([&work_runs, token] { work_runs.fetch_add(1); },
                            [&done_runs, token](Result<void>) { ++done_runs; });
        },
        [&](long k) {
            EXPECT_EQ(token.use_count(), 1) << "failure at " << k;
        },
        [&] {
            while (done_runs == 0) {
                iter(true);
            }
        });
    EXPECT_GE(failures, 1);
    h.reset();
    EXPECT_EQ(work_runs.load(), 1) << "a job from a failed submit ran";
    EXPECT_EQ(done_runs, 1);
    EXPECT_EQ(token.use_count(), 1);
}

}  // namespace
}  // namespace aio::test
