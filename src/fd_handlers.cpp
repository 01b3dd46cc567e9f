// SPDX-License-Identifier: LGPL-2.1-or-later
// The fd-handler list under list_lock_ (a LockCnt): writers on any thread publish and
// retire nodes under the lock; the home thread walks and dispatches holding only a count,
// so walks never block each other. A node removed during a walk is only marked deleted
// and freed by the outermost walker.
#include "context_impl.hpp"

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include <sys/epoll.h>
#include <unistd.h>

namespace aio {

namespace {

constexpr short kReadEvents = POLLIN | POLLHUP | POLLERR;
constexpr short kWriteEvents = POLLOUT | POLLERR;

std::uint32_t epoll_events_for(short events) noexcept
{
    std::uint32_t ev = 0;
    if ((events & POLLIN) != 0) {
        ev |= EPOLLIN;
    }
    if ((events & POLLOUT) != 0) {
        ev |= EPOLLOUT;
    }
    return ev;  // EPOLLERR and EPOLLHUP are always reported
}

int epoll_update(int epfd, int op, FdNode* n) noexcept
{
    // The kernel hands n back to the home thread through epoll_wait, an edge the C++
    // memory model (and TSan) cannot see; this release pairs with the acquire in
    // fdmon_epoll_harvest() so the node's construction happens-before its use there.
    n->epoll_publish.fetch_add(1, std::memory_order_release);
    epoll_event ev{};
    ev.events = epoll_events_for(n->events);
    ev.data.ptr = n;
    return epoll_ctl(epfd, op, n->fd, &ev) == 0 ? 0 : errno;
}

// Frees a chain of unlinked nodes; called without the lock so callbacks' captures are
// destroyed outside it.
void free_nodes(FdNode* n) noexcept
{
    while (n != nullptr) {
        FdNode* next = n->deleted_next;
        std::unique_ptr<FdNode>{n};
        n = next;
    }
}

}  // namespace

// Unlinks `victim` from the handler list. Requires the lock held and no walkers.
static void unlink_handler_locked(std::atomic<FdNode*>& head, FdNode* victim) noexcept
{
    std::atomic<FdNode*>* link = &head;
    for (FdNode* n = link->load(std::memory_order_relaxed); n != nullptr;
         n = link->load(std::memory_order_relaxed)) {
        if (n == victim) {
            link->store(n->next.load(std::memory_order_relaxed), std::memory_order_release);
            return;
        }
        link = &n->next;
    }
}

void ContextImpl::set_fd_handler(int fd, FdHandlers h, bool external, bool internal)
{
    check_not_forked("set_fd_handler");
    check_not_finalizing("set_fd_handler");
    // Argument checks first, then the work.
    if (fd < 0) {
        throw std::system_error(EBADF, std::generic_category(),
                                "aio::Context '" + name() + "': set_fd_handler(fd=" +
                                    std::to_string(fd) + ")");
    }
    if (h.poll && !h.poll_ready) {
        throw std::invalid_argument("aio::Context '" + name() + "': set_fd_handler(fd=" +
                                    std::to_string(fd) +
                                    "): a poll callback needs a poll_ready callback");
    }
    if (!h.read && !h.write && !h.poll) {
        clear_fd_handler(fd);
        return;
    }

    ForeignCallRef hold(this);  // the handler may run before notify() below
    auto node = std::make_unique<FdNode>();
    node->fd = fd;
    node->external = external;
    node->internal = internal;
    node->events = static_cast<short>((h.read ? kReadEvents : 0) | (h.write ? kWriteEvents : 0));
    node->name = h.name;
    node->h = std::move(h);

    FdNode* to_free = nullptr;
    list_lock_.lock();
    // The map slot is made before the kernel is told, so that nothing can fail (throw
    // bad_alloc) between a successful epoll_ctl and the node being published.
    std::unordered_map<int, FdNode*>::iterator it;
    bool inserted;
    try {
        std::tie(it, inserted) = by_fd_.try_emplace(fd, nullptr);
    } catch (...) {
        list_lock_.unlock();
        throw;
    }
    FdNode* old = it->second;

    // The epoll set is kept in sync whatever monitor poll() uses, so a registration that
    // epoll refuses fails the same way in every mode. A suspended external node stays out
    // of the set; probe the fd with ADD+DEL so bad fds are still reported.
    int err = 0;
    const bool in_set = node_enabled(node.get());
    if (old != nullptr && node_enabled(old)) {
        err = in_set ? epoll_update(epfd_, EPOLL_CTL_MOD, node.get())
                     : epoll_update(epfd_, EPOLL_CTL_DEL, old);
        if (err == ENOENT) {  // the old fd was closed (and the number reused): add afresh
            err = in_set ? epoll_update(epfd_, EPOLL_CTL_ADD, node.get()) : 0;
        }
    } else {
        err = epoll_update(epfd_, EPOLL_CTL_ADD, node.get());
        if (err == 0 && !in_set) {
            epoll_update(epfd_, EPOLL_CTL_DEL, node.get());
        }
    }
    if (err != 0) {
        if (inserted) {
            by_fd_.erase(it);
        }
        list_lock_.unlock();
        throw std::system_error(err, std::generic_category(),
                                "aio::Context '" + name() + "': set_fd_handler(fd=" +
                                    std::to_string(fd) + ")");
    }

    FdNode* n = node.release();
    n->next.store(handlers_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    // release: walkers that see the node see it fully built.
    handlers_.store(n, std::memory_order_release);
    it->second = n;
    live_handlers_.fetch_add(1, std::memory_order_relaxed);
    if (!internal) {
        kernel_wait_cnt_.fetch_add(1, std::memory_order_relaxed);
    }
    if (old != nullptr) {
        to_free = retire_locked(old);
    }
    list_lock_.unlock();
    free_nodes(to_free);
    notify();
}

FdNode* ContextImpl::retire_locked(FdNode* n) noexcept
{
    n->deleted.store(true, std::memory_order_release);
    live_handlers_.fetch_sub(1, std::memory_order_relaxed);
    if (!n->internal) {
        kernel_wait_cnt_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (list_lock_.count() != 0) {
        // Someone is walking: the outermost walker frees it.
        n->deleted_next = deleted_handlers_.load(std::memory_order_relaxed);
        deleted_handlers_.store(n, std::memory_order_relaxed);
        return nullptr;
    }
    unlink_handler_locked(handlers_, n);
    n->deleted_next = nullptr;
    return n;
}

void ContextImpl::clear_fd_handler(int fd) noexcept
{
    check_not_forked("clear_fd_handler");
    if (finalizing_.load(std::memory_order_relaxed)) {
        return;  // every handler is being dropped anyway (QEMU's finalize-time CRITICAL)
    }
    ForeignCallRef hold(this);
    list_lock_.lock();
    auto it = by_fd_.find(fd);
    if (it == by_fd_.end()) {
        list_lock_.unlock();
        return;
    }
    FdNode* old = it->second;
    by_fd_.erase(it);
    if (node_enabled(old)) {
        // Fails harmlessly (ENOENT/EBADF) if the fd was already closed.
        epoll_update(epfd_, EPOLL_CTL_DEL, old);
    }
    FdNode* to_free = retire_locked(old);
    list_lock_.unlock();
    free_nodes(to_free);
    notify();
}

void ContextImpl::reap_deleted_handlers() noexcept
{
    if (deleted_handlers_.load(std::memory_order_relaxed) == nullptr) {
        return;
    }
    // Only the outermost walker (count exactly 1: us) may free; nested ones leave it.
    if (!list_lock_.dec_if_lock()) {
        return;
    }
    FdNode* chain = deleted_handlers_.exchange(nullptr, std::memory_order_relaxed);
    for (FdNode* n = chain; n != nullptr; n = n->deleted_next) {
        unlink_handler_locked(handlers_, n);
    }
    list_lock_.inc_and_unlock();
    free_nodes(chain);
}

void ContextImpl::set_external_disabled_locked(bool disabled) noexcept
{
    // epoll cannot filter, so suspended external nodes leave the set and come back.
    for (auto& [fd, n] : by_fd_) {
        if (n->external) {
            epoll_update(epfd_, disabled ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, n);
        }
    }
}

// Per-handler stats and the "ready on every iteration" warning: a handler dispatched in
// every iteration for over a second keeps the loop from ever sleeping, the classic GLib
// app bug; it is named once.
void ContextImpl::note_dispatch(FdNode* n) noexcept
{
    bump(stats_.fd_dispatches);
    n->dispatches.store(n->dispatches.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    const std::uint64_t iter = stats_.iterations.load(std::memory_order_relaxed);
    if (n->last_iter + 1 != iter || n->streak_start_ns == 0) {
        n->streak_start_ns = monotonic_ns();  // a new streak
    } else if (!n->warned_busy && (iter & 1023) == 0 &&
               monotonic_ns() - n->streak_start_ns > 1'000'000'000) {
        n->warned_busy = true;
        g_warning("aio::Context '%s': fd %d handler '%s' has been ready on every iteration "
                  "for over 1 s; the loop never sleeps (is the fd drained?)",
                  name().c_str(), n->fd, n->name != nullptr ? n->name : "(unnamed)");
    }
    n->last_iter = iter;
}

bool ContextImpl::dispatch_ready(ReadyList& ready, const IterPoll* it) noexcept
{
    bool progress = false;
    while (FdNode* n = ready.pop()) {
        const short rev = std::exchange(n->revents, short{0});
        if (n->deleted.load(std::memory_order_acquire) || !node_enabled(n)) {
            continue;
        }
        if (it != nullptr && it->max_ns > 0 && n->h.poll) {
            adapt_poll_window(n, (rev & kPolledReady) != 0, it->polled, it->block_ns);
        }
        if ((rev & kPolledReady) != 0) {
            // Found by busy polling. While poll_ready runs the node is out of the busy
            // poll set, so a nested poll() cannot re-enter it.
            n->in_poll_ready = true;
            n->h.poll_ready();
            n->in_poll_ready = false;
            if (!n->internal) {
                progress = true;
                note_dispatch(n);
            }
            continue;
        }
        if (n->h.read && (rev & kReadEvents) != 0) {
            n->h.read();
            if (!n->internal) {
                progress = true;
                note_dispatch(n);
            }
        }
        // The read callback may have removed or replaced this handler, or disabled
        // external clients.
        if (n->h.write && (rev & kWriteEvents) != 0 &&
            !n->deleted.load(std::memory_order_acquire) && node_enabled(n)) {
            n->h.write();
            if (!n->internal) {
                progress = true;
                note_dispatch(n);
            }
        }
    }
    return progress;
}

// --- the public face -------------------------------------------------------------------

void Context::set_fd_handler(int fd, FdHandlers handlers, bool external)
{
    ContextImpl::from(this)->set_fd_handler(fd, std::move(handlers), external, false);
}

void Context::clear_fd_handler(int fd) noexcept { ContextImpl::from(this)->clear_fd_handler(fd); }

void Context::set_event_notifier(EventNotifier& notifier, FdHandlers handlers, bool external)
{
    if (handlers.write) {
        throw std::invalid_argument("aio::Context '" + name() +
                                    "': set_event_notifier takes no write callback");
    }
    set_fd_handler(notifier.fd(), std::move(handlers), external);
}

void Context::clear_event_notifier(EventNotifier& notifier) noexcept
{
    clear_fd_handler(notifier.fd());
}

void Context::disable_external() noexcept
{
    auto* c = ContextImpl::from(this);
    c->list_lock_.lock();
    if (c->external_disable_cnt_.fetch_add(1, std::memory_order_relaxed) == 0) {
        c->set_external_disabled_locked(true);
    }
    c->list_lock_.unlock();
}

void Context::enable_external() noexcept
{
    auto* c = ContextImpl::from(this);
    c->list_lock_.lock();
    int old = c->external_disable_cnt_.load(std::memory_order_relaxed);
    if (old <= 0) {
        c->list_lock_.unlock();
        c->fatal("enable_external() without a matching disable_external()");
    }
    c->external_disable_cnt_.store(old - 1, std::memory_order_relaxed);
    if (old == 1) {
        c->set_external_disabled_locked(false);
    }
    c->list_lock_.unlock();
    if (old == 1) {
        // A loop asleep with a poll(2) set built while disabled must rebuild it.
        c->notify();
    }
}

bool Context::external_disabled() const noexcept
{
    return ContextImpl::from(const_cast<Context*>(this))
               ->external_disable_cnt_.load(std::memory_order_relaxed) > 0;
}

}  // namespace aio
