// SPDX-License-Identifier: LGPL-2.1-or-later
// EventNotifier (eventfd and pipe) and UniqueFunction.
#include <aio/event_notifier.hpp>
#include <aio/function.hpp>

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace aio::test {
namespace {

template <class Kind>
EventNotifier make_notifier(bool active);

struct EventFd {};
struct Pipe {};

template <>
EventNotifier make_notifier<EventFd>(bool active)
{
    return EventNotifier(active);
}

template <>
EventNotifier make_notifier<Pipe>(bool active)
{
    return EventNotifier(EventNotifier::UsePipe{}, active);
}

template <class Kind>
class EventNotifierTest : public ::testing::Test {};
using Kinds = ::testing::Types<EventFd, Pipe>;
TYPED_TEST_SUITE(EventNotifierTest, Kinds);

TYPED_TEST(EventNotifierTest, SetAndTestAndClear)
{
    EventNotifier e = make_notifier<TypeParam>(false);
    EXPECT_GE(e.fd(), 0);
    EXPECT_FALSE(e.test_and_clear());
    EXPECT_EQ(e.set(), 0);
    EXPECT_EQ(e.set(), 0);
    EXPECT_TRUE(e.test_and_clear());
    EXPECT_FALSE(e.test_and_clear()) << "one clear consumes every set";
}

TYPED_TEST(EventNotifierTest, InitiallyActive)
{
    EventNotifier e = make_notifier<TypeParam>(true);
    EXPECT_TRUE(e.test_and_clear());
}

TYPED_TEST(EventNotifierTest, FdsAreNonBlockingAndCloseOnExec)
{
    EventNotifier e = make_notifier<TypeParam>(false);
    for (int fd : {e.fd(), e.write_fd()}) {
        EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    }
}

TYPED_TEST(EventNotifierTest, SaturationMeansAlreadySet)
{
    // A pipe fills up after ~64 KiB of 8-byte writes; set() must keep returning 0.
    EventNotifier e = make_notifier<TypeParam>(false);
    for (int i = 0; i < 20000; ++i) {
        ASSERT_EQ(e.set(), 0) << "write " << i;
    }
    EXPECT_TRUE(e.test_and_clear());
    EXPECT_FALSE(e.test_and_clear()) << "drained completely";
}

TYPED_TEST(EventNotifierTest, MoveTransfersOwnershipAndClosesOnce)
{
    EventNotifier a = make_notifier<TypeParam>(false);
    const int fd = a.fd();
    EventNotifier b(std::move(a));
    EXPECT_EQ(a.fd(), -1);  // NOLINT(bugprone-use-after-move): documented state
    EXPECT_EQ(a.set(), -EBADF);
    EXPECT_FALSE(a.test_and_clear());
    EXPECT_EQ(b.fd(), fd);
    EventNotifier c = make_notifier<TypeParam>(false);
    const int c_fd = c.fd();
    c = std::move(b);
    EXPECT_EQ(c.fd(), fd);
    EXPECT_EQ(fcntl(c_fd, F_GETFD), -1) << "move-assignment closed the old fds";
}

TYPED_TEST(EventNotifierTest, SetFromManyThreads)
{
    EventNotifier e = make_notifier<TypeParam>(false);
    std::array<std::thread, 4> ts;
    for (auto& t : ts) {
        t = std::thread([&] {
            for (int i = 0; i < 1000; ++i) {
                e.set();
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_TRUE(e.test_and_clear());
    EXPECT_FALSE(e.test_and_clear());
}

TEST(UniqueFunction, SmallCallableIsInlineAndMoveOnlyCapturesWork)
{
    auto p = std::make_unique<int>(7);
    UniqueFunction<int()> f = [p = std::move(p)] { return *p; };
    ASSERT_TRUE(f);
    EXPECT_EQ(f(), 7);
    UniqueFunction<int()> g = std::move(f);
    EXPECT_FALSE(f);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(g(), 7);
}

TEST(UniqueFunction, LargeCallableIsBoxedAndDestroyedOnce)
{
    static int destroyed = 0;
    struct Big {
        std::array<char, 256> pad{};
        int v = 3;
        Big() = default;
        Big(Big&& o) noexcept : pad(o.pad), v(o.v) { o.v = -1; }
        ~Big()
        {
            if (v != -1) {
                ++destroyed;
            }
        }
        int operator()() const { return v; }
    };
    {
        UniqueFunction<int()> f = Big{};
        UniqueFunction<int()> g;
        g = std::move(f);
        EXPECT_EQ(g(), 3);
    }
    EXPECT_EQ(destroyed, 1);
}

TEST(UniqueFunction, NullFunctionPointerIsEmpty)
{
    void (*fp)() = nullptr;
    UniqueFunction<void()> f = fp;
    EXPECT_FALSE(f);
    UniqueFunction<void()> g = nullptr;
    EXPECT_FALSE(g);
}

TEST(UniqueFunction, ArgumentsAndResultsAreForwarded)
{
    UniqueFunction<std::unique_ptr<int>(std::unique_ptr<int>, int)> f =
        [](std::unique_ptr<int> p, int add) {
            *p += add;
            return p;
        };
    auto r = f(std::make_unique<int>(1), 2);
    EXPECT_EQ(*r, 3);
}

}  // namespace
}  // namespace aio::test
