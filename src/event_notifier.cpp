// SPDX-License-Identifier: LGPL-2.1-or-later
#include <aio/event_notifier.hpp>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace aio {

namespace {

void open_pipe(int& rfd, int& wfd)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "aio::EventNotifier: pipe2");
    }
    rfd = fds[0];
    wfd = fds[1];
}

}  // namespace

EventNotifier::EventNotifier(bool active)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) {
        rfd_ = wfd_ = fd;
    } else if (errno == ENOSYS || errno == EINVAL) {
        open_pipe(rfd_, wfd_);  // kernels without eventfd
    } else {
        throw std::system_error(errno, std::generic_category(), "aio::EventNotifier: eventfd");
    }
    if (active) {
        set();
    }
}

EventNotifier::EventNotifier(UsePipe, bool active)
{
    open_pipe(rfd_, wfd_);
    if (active) {
        set();
    }
}

EventNotifier::~EventNotifier() { close_fds(); }

EventNotifier::EventNotifier(EventNotifier&& other) noexcept
    : rfd_(std::exchange(other.rfd_, -1)), wfd_(std::exchange(other.wfd_, -1))
{
}

EventNotifier& EventNotifier::operator=(EventNotifier&& other) noexcept
{
    if (this != &other) {
        close_fds();
        rfd_ = std::exchange(other.rfd_, -1);
        wfd_ = std::exchange(other.wfd_, -1);
    }
    return *this;
}

void EventNotifier::close_fds() noexcept
{
    // close() is never retried: on Linux the fd is gone even when it reports EINTR.
    if (wfd_ >= 0 && wfd_ != rfd_) {
        close(wfd_);
    }
    if (rfd_ >= 0) {
        close(rfd_);
    }
    rfd_ = wfd_ = -1;
}

int EventNotifier::set() noexcept
{
    if (wfd_ < 0) {
        return -EBADF;
    }
    const std::uint64_t one = 1;
    ssize_t r;
    do {
        r = write(wfd_, &one, sizeof(one));
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN) {  // EAGAIN: counter or pipe full, i.e. already set
        return -errno;
    }
    return 0;
}

bool EventNotifier::test_and_clear() noexcept
{
    if (rfd_ < 0) {
        return false;
    }
    bool was_set = false;
    char buf[512];
    ssize_t r;
    // A pipe may hold many writes: read until it is empty (a short read).
    do {
        r = read(rfd_, buf, sizeof(buf));
        if (r > 0) {
            was_set = true;
        }
    } while ((r < 0 && errno == EINTR) || r == static_cast<ssize_t>(sizeof(buf)));
    return was_set;
}

}  // namespace aio
