/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Promela model of aio::Context's notify protocol, written from our own code:
 *   producer  = ContextImpl::bh_enqueue() + ContextImpl::notify()        (src/bh.cpp, src/notify.cpp)
 *   poll()    = ContextImpl::poll(), phases 1-7                          (src/context.cpp)
 *   GLib      = gsource_prepare / GLib's poll / gsource_check / dispatch (src/gsource.cpp)
 *
 * Spin explores every interleaving of NPROD producer threads (each publishes one bottom
 * half and notifies) with one home thread that loops forever, each iteration choosing
 * poll(true), poll(false) or one GLib iteration (a GLib-attached context may also be
 * polled directly, as QEMU's main loop does from AIO_WAIT_WHILE).
 *
 * Property "work published => eventually examined", checked two ways:
 *   - ltl `examined`: [] (work > 0 -> <> work == 0)   (./pan -a; a deadlock with work
 *     pending is a violation through Spin's stutter extension of terminal states);
 *   - the `watchdog` process: when nothing in the system can move (Spin's `timeout`),
 *     no published bottom half may be left unexamined.
 * The home thread's two sleeps (poll()'s wait and GLib's poll) are `end` labels: being
 * asleep with nothing to do is a valid end state.
 *
 * Promela statements are sequentially consistent, which is what our full fences buy.
 * A missing fence is modelled as the reordering it permits (a load performed before the
 * preceding store becomes visible: store buffering), as a nondeterministic choice.
 *
 * Variants (spin -D<NAME>); verify/run.sh checks that each broken one is refuted:
 *   BROKEN_NO_FENCE_A  notify(): the load of notify_me may pass the store of `notified`
 *   BROKEN_NO_FENCE_B  poll(): the load of `notified` may pass notify_me += 2
 *   BROKEN_NO_FENCE_C  GLib prepare: reading the BH list may pass notify_me |= 1
 *   BROKEN_NO_FENCE_D  notify_accept(): the store notified = false may stay in the store
 *                      buffer past the reads of the BH list (bh_poll, compute_timeout)
 *                      until the next full fence (B or C) drains it; reads of `notified`
 *                      by the home thread itself see the buffered value (forwarding)
 *   BROKEN_SKIP_WRITE  notify(): skip the eventfd write when `notified` was already set
 *                      (the optimisation src/notify.cpp says loses wake-ups)
 */

#ifndef NPROD
#define NPROD 2
#endif
#define MAX_RESTARTS 2   /* how often GLib may skip check() (its poll set changed) */

byte work = 0;       /* bottom halves linked on bh_list_ and not yet taken by bh_poll() */
bit notified = 0;    /* ContextImpl::notified_ */
byte notify_me = 0;  /* ContextImpl::notify_me_: bit 0 = GLib prepare..check, +2 per poll() sleeping */
bit efd = 0;         /* the context's EventNotifier (eventfd) is readable */

/* BROKEN_NO_FENCE_D's store buffer (a no-op in every other variant: pend stays 0) */
#define DRAIN()       if :: pend -> notified = 0; pend = 0 :: else -> skip fi
#define MAYBE_DRAIN() if :: pend -> notified = 0; pend = 0 :: true -> skip fi

#ifndef NOLTL
ltl examined { [] ((work > 0) -> <> (work == 0)) }
#endif

active [NPROD] proctype producer()
{
    byte nm;
    bit old;

    /* bh_enqueue(): fetch_or(PENDING) won, CAS the node onto bh_list_ */
    work++;
    /* notify(), fence(R): the link is visible before `notified` (release) */
#ifdef BROKEN_SKIP_WRITE
    atomic { old = notified; notified = 1 };
    nm = notify_me;
    if
    :: old == 0 && nm != 0 -> efd = 1
    :: else -> skip    /* "someone already notified": the write is skipped */
    fi
#else
#ifdef BROKEN_NO_FENCE_A
    if
    :: notified = 1; nm = notify_me
    :: nm = notify_me; notified = 1   /* no fence(A): the load passes the store */
    fi;
#else
    notified = 1;
    /* fence(A): pairs with fence(B) in poll() and fence(C) in gsource_prepare() */
    nm = notify_me;
#endif
    if
    :: nm != 0 -> efd = 1          /* notifier_.set() */
    :: else -> skip
    fi
#endif
}

active proctype home()
{
    bit tmo0;      /* the iteration's timeout is zero */
    bit woke;      /* the kernel reported the notifier readable in this iteration */
    bit ready;     /* GLib: prepare or check returned TRUE */
    bit n;
    bit pend = 0;  /* BROKEN_NO_FENCE_D: the clear of `notified` is still buffered */
    byte w;
    byte restarts = 0;

loop:
    woke = 0;
    if
    /* ---------------------------------------------------------------- poll(true) --- */
    :: true ->
        /* 1. compute timeout: 0 if a BH is scheduled */
        tmo0 = (work > 0);
        MAYBE_DRAIN();
        /* 2. busy poll (IOThreads): the notifier's poll callback reads `notified` */
        if
        :: !tmo0 && notified && !pend -> tmo0 = 1
        :: true -> skip
        fi;
        if
        :: !tmo0 ->
            /* 3. announce sleep */
            DRAIN();
#ifdef BROKEN_NO_FENCE_B
            if
            :: notify_me = notify_me + 2; n = notified
            :: n = notified; notify_me = notify_me + 2   /* no fence(B) */
            fi;
#else
            notify_me = notify_me + 2;
            /* fence(B): pairs with fence(A) in notify() */
            n = notified;
#endif
            if
            :: n -> tmo0 = 1
            :: else -> skip
            fi;
            /* 4. wait (no timers in this model: an infinite timeout) */
            if
            :: !tmo0 ->
end_wait:       efd;          /* blocks until the eventfd is readable */
                woke = 1
            :: else ->
                if
                :: woke = efd    /* need_wait(): a user fd exists, the kernel is asked with 0 */
                :: skip
                fi
            fi;
            /* 5. accept: notify_me -= 2 */
            notify_me = notify_me - 2
        :: else ->
            if
            :: woke = efd
            :: skip
            fi
        fi;
        goto take_work
    /* --------------------------------------------------------------- poll(false) --- */
    :: true ->
        if
        :: woke = efd
        :: skip
        fi;
        goto take_work
    /* ------------------------------------------------------------ GLib iteration --- */
    :: true ->
        /* gsource_prepare */
        DRAIN();
#ifdef BROKEN_NO_FENCE_C
        if
        :: notify_me = notify_me | 1; ready = (work > 0)
        :: ready = (work > 0); notify_me = notify_me | 1   /* no fence(C) */
        fi;
#else
        notify_me = notify_me | 1;
        /* fence(C): pairs with fence(A) in notify(); then compute_timeout() */
        ready = (work > 0);
#endif
        /* GLib polls the context's epoll fd (which holds the eventfd) */
        if
        :: ready -> woke = efd        /* timeout 0: a sample */
        :: else ->
end_gpoll:  efd;
            woke = 1
        fi;
        /* the poll set changed: GLib skips check() and prepares again (bit 0 stays) */
        if
        :: restarts < MAX_RESTARTS -> restarts++; goto loop
        :: true -> skip
        fi;
        if
        :: !ready ->
            /* gsource_check: clear_glib_bit() = clear bit 0, notify_accept() */
            notify_me = notify_me & 254;
            notified = 0;
            /* fence(D) */
            ready = (work > 0 || woke)
        :: else -> skip   /* GLib skips check() when prepare returned TRUE */
        fi;
        if
        :: ready ->
            /* gsource_dispatch: clear_glib_bit() again, then bh_poll(), then the fds */
            notify_me = notify_me & 254;
            goto take_work
        :: else -> goto loop
        fi
    fi;

take_work:
    /* notify_accept(): notified = false, fence(D), then examine the work (bh_poll) */
#ifdef BROKEN_NO_FENCE_D
    DRAIN();                         /* an older buffered clear drains first (FIFO) */
    pend = 1;                        /* no fence(D): the clear sits in the store buffer */
    MAYBE_DRAIN();
    w = work;
    MAYBE_DRAIN();
#else
    notified = 0;
    /* fence(D): pairs with fence(R) in notify() */
    w = work;
#endif
    /* bh_poll(): take the slice that was read (exchange on bh_list_) */
    work = work - w;
    MAYBE_DRAIN();
    /* dispatch_ready(): the notifier's read handler drains the eventfd */
    if
    :: woke -> efd = 0
    :: else -> skip
    fi;
    MAYBE_DRAIN();
    goto loop
}

/* Nothing can move: every published bottom half must have been examined. */
#ifndef NOWATCHDOG
active proctype watchdog()
{
    timeout -> assert(work == 0)
}
#endif
