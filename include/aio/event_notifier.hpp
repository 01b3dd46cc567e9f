// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::EventNotifier: a level-triggered wake-up flag backed by an fd (eventfd, or a pipe
// where eventfd is unavailable), so a poll loop can sleep on it.
//
// Thread safety: set() may be called from any thread concurrently with everything else;
// test_and_clear() from any thread, but normally only by the handler that watches fd().
// Construction, move and destruction need exclusive access.
#pragma once

#include <aio/export.hpp>

namespace aio {

class AIO_EXPORT EventNotifier {
public:
    // Creates the notifier, initially set if `active`.
    // Throws std::system_error (naming eventfd/pipe and errno) on failure; no fd leaks.
    explicit EventNotifier(bool active = false);
    ~EventNotifier();

    EventNotifier(EventNotifier&& other) noexcept;
    EventNotifier& operator=(EventNotifier&& other) noexcept;
    EventNotifier(const EventNotifier&) = delete;
    EventNotifier& operator=(const EventNotifier&) = delete;

    // Signals the notifier. Any thread. Retries EINTR; EAGAIN (counter or pipe full) means
    // it is already signalled. Returns 0 or a negative errno.
    int set() noexcept;

    // Clears the notifier; returns whether it was set. Any thread.
    bool test_and_clear() noexcept;

    // The fd to poll for readability (the read end). -1 after being moved from.
    [[nodiscard]] int fd() const noexcept { return rfd_; }
    // The fd set() writes to (the same as fd() for an eventfd).
    [[nodiscard]] int write_fd() const noexcept { return wfd_; }

    // Forces the pipe fallback (for tests of that path). Same contract as the constructor.
    struct UsePipe {};
    EventNotifier(UsePipe, bool active = false);

private:
    void close_fds() noexcept;

    int rfd_ = -1;
    int wfd_ = -1;
};

}  // namespace aio
