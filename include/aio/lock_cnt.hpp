// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::LockCnt: a mutex fused with a counter of concurrent "visits" (QEMU's QemuLockCnt).
//
// Rules it enforces: protected data may be freed only while the count is zero *and* the
// lock is held; a new visit cannot start while the count is zero and the lock is held, but
// may start while the lock is held if the count is already non-zero. Readers therefore walk
// an RCU-style list with inc()/dec() and never block each other; writers publish under
// lock()/unlock(); the outermost reader reaps with dec_if_lock() ... inc_and_unlock().
//
// Two implementations with one interface: LockCntFutex (one 32-bit futex word, Linux) and
// LockCntMutex (a mutex plus an atomic counter, portable). `LockCnt` names the one the
// library uses. Both pass the same tests.
//
// Thread safety: every member may be called from any thread. inc() must not be called
// while the same thread holds the lock (it could wait for itself).
#pragma once

#include <aio/export.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace aio {

class AIO_EXPORT LockCntFutex {
public:
    LockCntFutex() noexcept = default;
    LockCntFutex(const LockCntFutex&) = delete;
    LockCntFutex& operator=(const LockCntFutex&) = delete;

    void inc() noexcept;               // start a visit; waits only if count == 0 and locked
    void dec() noexcept;               // end a visit
    bool dec_and_lock() noexcept;      // end a visit; if it was the last, return true locked
    bool dec_if_lock() noexcept;       // if count == 1: drop it to 0, return true locked
    void lock() noexcept;
    void unlock() noexcept;
    void inc_and_unlock() noexcept;    // atomically count+1 and unlock
    [[nodiscard]] unsigned count() const noexcept;

private:
    // bits 0-1: 0 free, 1 locked, 2 locked with waiters; bits 2..31: the count (step 4).
    std::atomic<std::uint32_t> word_{0};
};

class AIO_EXPORT LockCntMutex {
public:
    LockCntMutex() noexcept = default;
    LockCntMutex(const LockCntMutex&) = delete;
    LockCntMutex& operator=(const LockCntMutex&) = delete;

    void inc() noexcept;
    void dec() noexcept;
    bool dec_and_lock() noexcept;
    bool dec_if_lock() noexcept;
    void lock() noexcept;
    void unlock() noexcept;
    void inc_and_unlock() noexcept;
    [[nodiscard]] unsigned count() const noexcept;

private:
    std::mutex mutex_;
    std::atomic<unsigned> count_{0};
};

#if defined(__linux__) && !defined(AIO_LOCKCNT_MUTEX)
using LockCnt = LockCntFutex;
#else
using LockCnt = LockCntMutex;
#endif

}  // namespace aio
