// SPDX-License-Identifier: LGPL-2.1-or-later
// Tests for aio::LockCntFutex and aio::LockCntMutex: the same suite runs over both.

#include <aio/lock_cnt.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define AIO_TEST_SANITIZED 1
#endif
#endif
#if (defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)) && !defined(AIO_TEST_SANITIZED)
#define AIO_TEST_SANITIZED 1
#endif

namespace {

using namespace std::chrono_literals;

// Aborts the whole binary if a test outlives its limit: a deadlock must fail loudly
// rather than hang CI.
class Watchdog {
public:
    explicit Watchdog(std::chrono::seconds limit, std::string what = "test")
        : thread_([this, limit, what = std::move(what)] {
              std::unique_lock lk(m_);
              if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
                  std::fprintf(stderr, "watchdog: %s still running after %llds (deadlock?)\n",
                               what.c_str(), static_cast<long long>(limit.count()));
                  std::abort();
              }
          }) {}
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog() {
        {
            const std::lock_guard lk(m_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;  // last: started once the members above exist
};

// Gives another thread a fair chance to get past a point it must not pass. The assertion
// after it is always "has not happened yet"; a broken lock fails it, a slow machine cannot.
void give_it_a_chance(const std::atomic<bool>& flag) {
    for (int i = 0; i < 20 && !flag.load(); ++i) {
        std::this_thread::sleep_for(1ms);
    }
}

template <typename T>
class LockCntTest : public ::testing::Test {
protected:
    T cnt;
    Watchdog watchdog{60s};
};

using Implementations = ::testing::Types<aio::LockCntFutex, aio::LockCntMutex>;

class ImplName {
public:
    template <typename T>
    static std::string GetName(int) {
        if constexpr (std::is_same_v<T, aio::LockCntFutex>) {
            return "Futex";
        } else {
            return "Mutex";
        }
    }
};

TYPED_TEST_SUITE(LockCntTest, Implementations, ImplName);

// True once another thread has taken and released the lock. If the lock were (wrongly)
// still held, this hangs and the watchdog reports it.
template <typename T>
bool lock_is_free(T& cnt) {
    std::atomic<bool> got{false};
    std::thread t([&] {
        cnt.lock();
        got = true;
        cnt.unlock();
    });
    t.join();
    return got.load();
}

TYPED_TEST(LockCntTest, IncDecCount) {
    auto& c = this->cnt;
    EXPECT_EQ(c.count(), 0U);
    c.inc();
    EXPECT_EQ(c.count(), 1U);
    c.inc();
    c.inc();
    EXPECT_EQ(c.count(), 3U);
    c.dec();
    EXPECT_EQ(c.count(), 2U);
    c.dec();
    c.dec();
    EXPECT_EQ(c.count(), 0U);
    EXPECT_TRUE(lock_is_free(c));
}

TYPED_TEST(LockCntTest, DecAndLockLastVisitTakesLock) {
    auto& c = this->cnt;
    c.inc();
    ASSERT_TRUE(c.dec_and_lock());
    EXPECT_EQ(c.count(), 0U);

    // Held: another thread's lock() must not get through until we unlock.
    std::atomic<bool> got{false};
    std::thread t([&] {
        c.lock();
        got = true;
        c.unlock();
    });
    give_it_a_chance(got);
    EXPECT_FALSE(got.load());
    c.unlock();
    t.join();
    EXPECT_TRUE(got.load());
}

TYPED_TEST(LockCntTest, DecAndLockNotLastLeavesUnlocked) {
    auto& c = this->cnt;
    c.inc();
    c.inc();
    EXPECT_FALSE(c.dec_and_lock());
    EXPECT_EQ(c.count(), 1U);
    EXPECT_TRUE(lock_is_free(c));
    c.dec();
    EXPECT_EQ(c.count(), 0U);
}

TYPED_TEST(LockCntTest, DecIfLockWithCountOne) {
    auto& c = this->cnt;
    c.inc();
    ASSERT_TRUE(c.dec_if_lock());
    EXPECT_EQ(c.count(), 0U);
    std::atomic<bool> got{false};
    std::thread t([&] {
        c.lock();
        got = true;
        c.unlock();
    });
    give_it_a_chance(got);
    EXPECT_FALSE(got.load());
    c.unlock();
    t.join();
    EXPECT_TRUE(lock_is_free(c));
}

TYPED_TEST(LockCntTest, DecIfLockWithCountTwoChangesNothing) {
    auto& c = this->cnt;
    c.inc();
    c.inc();
    EXPECT_FALSE(c.dec_if_lock());
    EXPECT_EQ(c.count(), 2U);
    EXPECT_TRUE(lock_is_free(c));
    c.dec();
    c.dec();
}

TYPED_TEST(LockCntTest, ReaperPattern) {
    // The outermost visitor reaps and resumes its visit: dec_if_lock ... inc_and_unlock.
    auto& c = this->cnt;
    c.inc();
    ASSERT_TRUE(c.dec_if_lock());
    EXPECT_EQ(c.count(), 0U);
    c.inc_and_unlock();
    EXPECT_EQ(c.count(), 1U);
    EXPECT_TRUE(lock_is_free(c));
    c.dec();
    EXPECT_EQ(c.count(), 0U);
}

TYPED_TEST(LockCntTest, IncAndUnlock) {
    auto& c = this->cnt;
    c.lock();
    EXPECT_EQ(c.count(), 0U);
    c.inc_and_unlock();
    EXPECT_EQ(c.count(), 1U);
    EXPECT_TRUE(lock_is_free(c));
    c.dec();
    EXPECT_EQ(c.count(), 0U);
}

TYPED_TEST(LockCntTest, LockDoesNotTouchCount) {
    auto& c = this->cnt;
    c.inc();
    c.lock();
    EXPECT_EQ(c.count(), 1U);
    c.unlock();
    EXPECT_EQ(c.count(), 1U);
    c.dec();
}

TYPED_TEST(LockCntTest, LockExcludesLock) {
    auto& c = this->cnt;
    c.lock();
    std::atomic<bool> got{false};
    std::thread t([&] {
        c.lock();
        got = true;
        c.unlock();
    });
    give_it_a_chance(got);
    EXPECT_FALSE(got.load());
    c.unlock();
    t.join();
    EXPECT_TRUE(got.load());
}

TYPED_TEST(LockCntTest, IncWaitsWhileZeroAndLocked) {
    auto& c = this->cnt;
    c.lock();
    std::atomic<bool> entered{false};
    std::thread t([&] {
        c.inc();
        entered = true;
    });
    give_it_a_chance(entered);
    EXPECT_FALSE(entered.load());
    EXPECT_EQ(c.count(), 0U);
    c.unlock();
    t.join();
    EXPECT_TRUE(entered.load());
    EXPECT_EQ(c.count(), 1U);
    c.dec();
}

TYPED_TEST(LockCntTest, IncDoesNotWaitWhileNonZeroAndLocked) {
    auto& c = this->cnt;
    c.inc();
    c.lock();
    // The other thread must get in and out while we hold the lock; were inc() to wait,
    // join() would hang and the watchdog would abort.
    std::thread t([&] {
        c.inc();
        c.inc();
        c.dec();
    });
    t.join();
    EXPECT_EQ(c.count(), 2U);
    c.unlock();
    c.dec();
    c.dec();
}

TYPED_TEST(LockCntTest, DecAndLockWaitsForHolder) {
    auto& c = this->cnt;
    c.inc();
    c.lock();
    std::atomic<bool> done{false};
    std::atomic<bool> result{false};
    std::thread t([&] {
        result = c.dec_and_lock();
        done = true;
        if (result) {
            c.unlock();
        }
    });
    give_it_a_chance(done);
    EXPECT_FALSE(done.load());
    c.unlock();
    t.join();
    EXPECT_TRUE(result.load());
    EXPECT_EQ(c.count(), 0U);
}

TYPED_TEST(LockCntTest, WokenIncPassesWakeOn) {
    // Two inc() waiters and one lock() waiter pile up behind the holder. Whoever is woken
    // and leaves with a visit instead of the lock must wake the next one; otherwise a
    // waiter sleeps on a free lock and join() hangs (the watchdog fires).
    auto& c = this->cnt;
    c.lock();
    std::atomic<int> through{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
        ts.emplace_back([&] {
            c.inc();
            ++through;
            c.dec();
        });
    }
    ts.emplace_back([&] {
        c.lock();
        ++through;
        c.unlock();
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(through.load(), 0);
    c.unlock();
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_EQ(through.load(), 3);
    EXPECT_EQ(c.count(), 0U);
}

TYPED_TEST(LockCntTest, MutualExclusionStress) {
    auto& c = this->cnt;
#if defined(AIO_TEST_SANITIZED)
    constexpr int kIters = 20'000;
#else
    constexpr int kIters = 100'000;
#endif
    constexpr int kThreads = 4;
    long counter = 0;  // plain: only ever touched under the lock
    std::vector<std::thread> ts;
    for (int i = 0; i < kThreads; ++i) {
        ts.emplace_back([&, i] {
            for (int n = 0; n < kIters; ++n) {
                switch ((n + i) % 3) {
                case 0:
                    c.lock();
                    ++counter;
                    c.unlock();
                    break;
                case 1:
                    c.inc();
                    if (c.dec_and_lock()) {
                        ++counter;
                        c.unlock();
                    } else {
                        c.lock();
                        ++counter;
                        c.unlock();
                    }
                    break;
                default:
                    c.lock();
                    ++counter;
                    c.inc_and_unlock();
                    c.dec();
                    break;
                }
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_EQ(counter, static_cast<long>(kThreads) * kIters);
    EXPECT_EQ(c.count(), 0U);
}

// ---- torture: RCU-style list walking with deferred frees ------------------------------
//
// QEMU's pattern: writers insert at the head and *mark* nodes deleted under the lock;
// deleted nodes stay linked (visitors may be standing on them) until somebody holding the
// lock sees the count at zero and unlinks and frees them. That is only safe because no
// visit can start while the count is zero and the lock is held, so a LockCnt whose inc()
// slips in during reaping makes visitors walk into freed nodes (ASan/TSan/canary catch it).

constexpr std::uint64_t kMagic = 0xC0FFEE'0DDBA11ULL;

struct Node {
    std::uint64_t magic = kMagic;  // plain on purpose: TSan checks the LockCnt's ordering
    std::uint64_t seq = 0;
    std::atomic<bool> deleted{false};
    std::atomic<Node*> next{nullptr};
};

int torture_iterations() {
    if (const char* env = std::getenv("AIO_LOCKCNT_TORTURE_ITERS")) {
        return std::atoi(env);
    }
#if defined(AIO_TEST_SANITIZED)
    return 200'000;
#else
    return 1'000'000;
#endif
}

template <typename T>
struct Torture {
    static constexpr int kLive = 8;       // nodes not marked deleted
    static constexpr int kMaxNodes = 64;  // live + deleted-but-linked: bounds list length

    T cnt;
    std::atomic<Node*> head{nullptr};
    int linked = 0;        // guarded by cnt's lock
    std::uint64_t seq = 0;  // guarded by cnt's lock
    std::atomic<long> bad{0};
    std::atomic<long> freed{0};
    std::atomic<long> visited{0};

    Torture() {
        for (int i = 0; i < kLive; ++i) {
            push_locked();
        }
    }

    ~Torture() {
        for (Node* n = head.load(); n != nullptr;) {
            Node* next = n->next.load();
            delete n;
            n = next;
        }
    }

    void push_locked() {
        auto* n = new Node{};
        n->seq = seq++;
        n->next.store(head.load(std::memory_order_relaxed), std::memory_order_relaxed);
        head.store(n, std::memory_order_release);  // publishes magic/seq to visitors
        ++linked;
    }

    // Caller holds the lock with the count at zero: nobody stands on any node. Frees from
    // the tail up, so a visit that wrongly started meanwhile tends to overtake the reaper
    // and step onto a node it is about to free.
    void reap_locked() {
        std::vector<std::pair<std::atomic<Node*>*, Node*>> doomed;
        std::atomic<Node*>* link = &head;
        for (Node* n = link->load(std::memory_order_relaxed); n != nullptr;
             n = link->load(std::memory_order_relaxed)) {
            if (n->deleted.load(std::memory_order_relaxed)) {
                doomed.emplace_back(link, n);
            }
            link = &n->next;
        }
        for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) {
            auto [from, n] = *it;
            from->store(n->next.load(std::memory_order_relaxed), std::memory_order_release);
            n->magic = 0;
            delete n;
        }
        linked -= static_cast<int>(doomed.size());
        freed += static_cast<long>(doomed.size());
    }

    void walk() {
        long seen = 0;
        for (Node* n = head.load(std::memory_order_acquire); n != nullptr;
             n = n->next.load(std::memory_order_acquire)) {
            if (n->magic != kMagic) {
                ++bad;
            }
            if (!n->deleted.load(std::memory_order_relaxed)) {
                ++seen;
            }
        }
        visited.fetch_add(seen, std::memory_order_relaxed);
    }

    void walker(int visits, unsigned seed) {
        for (int i = 0; i < visits; ++i) {
            seed = seed * 1103515245U + 12345U;
            const unsigned r = seed >> 16;
            cnt.inc();
            walk();
            if (r % 8 == 0) {
                // Nested visit: never the last one out.
                cnt.inc();
                walk();
                if (r % 16 == 0) {
                    EXPECT_FALSE(cnt.dec_and_lock());
                } else {
                    cnt.dec();
                }
            }
            switch (r % 3) {
            case 0:
                cnt.dec();
                break;
            case 1:
                if (cnt.dec_and_lock()) {
                    reap_locked();
                    cnt.unlock();
                }
                break;
            default:
                if (cnt.dec_if_lock()) {
                    reap_locked();
                    cnt.inc_and_unlock();
                    walk();
                }
                cnt.dec();
                break;
            }
        }
    }

    long writer(const std::atomic<bool>& stop) {
        long replaced = 0;
        unsigned seed = 3;
        while (!stop.load(std::memory_order_relaxed)) {
            seed = seed * 1103515245U + 12345U;
            cnt.lock();
            bool full = linked >= kMaxNodes;
            if (!full) {
                // Retire the k-th live node and insert a replacement at the head.
                int k = static_cast<int>((seed >> 16) % kLive);
                for (Node* n = head.load(std::memory_order_relaxed); n != nullptr;
                     n = n->next.load(std::memory_order_relaxed)) {
                    if (!n->deleted.load(std::memory_order_relaxed) && k-- == 0) {
                        n->deleted.store(true, std::memory_order_relaxed);
                        break;
                    }
                }
                push_locked();
                ++replaced;
            }
            if (cnt.count() == 0) {
                reap_locked();
            }
            cnt.unlock();
            if (full) {
                std::this_thread::yield();  // let visitors drain so somebody can reap
            }
        }
        return replaced;
    }
};

TYPED_TEST(LockCntTest, Torture) {
    const int visits = torture_iterations();
    Torture<TypeParam> t;
    std::atomic<bool> stop{false};
    long replaced = 0;
    const auto start = std::chrono::steady_clock::now();
    {
        std::thread w([&] { replaced = t.writer(stop); });
        std::thread r1([&] { t.walker(visits, 1); });
        std::thread r2([&] { t.walker(visits, 2); });
        r1.join();
        r2.join();
        stop = true;
        w.join();
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("[ torture  ] %d visits x2, %ld replaced, %ld freed, %.3f s\n", visits,
                replaced, t.freed.load(), took.count());
    EXPECT_EQ(t.bad.load(), 0);
    EXPECT_EQ(t.cnt.count(), 0U);
    EXPECT_GT(replaced, 0);
    EXPECT_GT(t.visited.load(), 0);
}

}  // namespace
