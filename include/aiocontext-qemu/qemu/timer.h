/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/timer.h: clocks and timers with QEMU 7.2's names.
 *
 * Every AioContext owns one timer list per clock (a QEMUTimerListGroup); a timer fires
 * in the home thread of the context it was initialised on, after bottom halves and fd
 * handlers, never before its deadline; equal deadlines fire in arming order. Timers can
 * be armed, moved and deleted from any thread. The "main loop" timer list group
 * (main_loop_tlg, and a NULL group in timer_init_full) is the main AioContext's, set up
 * by qemu_init_main_loop(); it runs wherever that context is driven (aio_poll, or the
 * default GMainContext).
 *
 * QEMUTimer may be embedded (timer_init_*, aio_timer_init) or allocated (timer_new_*,
 * aio_timer_new; release with timer_free). An armed timer keeps its context alive;
 * timer_del() (or the timer firing) releases everything the library holds for it, so an
 * embedded timer needs no timer_deinit() once it is not pending.
 */
#ifndef AIOCONTEXT_QEMU_TIMER_H
#define AIOCONTEXT_QEMU_TIMER_H

#include "qemu/osdep.h"
#include "qemu/typedefs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NANOSECONDS_PER_SECOND 1000000000LL

#define SCALE_MS 1000000
#define SCALE_US 1000
#define SCALE_NS 1

typedef enum {
    QEMU_CLOCK_REALTIME = 0,   /* monotonic host time; always runs */
    QEMU_CLOCK_VIRTUAL = 1,    /* monotonic; stops while disabled (qemu_clock_enable) */
    QEMU_CLOCK_HOST = 2,       /* wall clock (CLOCK_REALTIME); may jump */
    QEMU_CLOCK_VIRTUAL_RT = 3, /* monotonic host time */
    QEMU_CLOCK_MAX
} QEMUClockType;

/* Timer attributes (accepted and kept; they change nothing here). */
#define QEMU_TIMER_ATTR_EXTERNAL ((int)(1U << 0))
#define QEMU_TIMER_ATTR_ALL 0xffffffff

typedef void QEMUTimerCB(void *opaque);

/* One timer list per clock. QEMUTimerList is opaque. */
struct QEMUTimerListGroup {
    QEMUTimerList *tl[QEMU_CLOCK_MAX];
};

struct QEMUTimer {
    int64_t expire_time;       /* deadline in ns, -1 when not pending (read-only) */
    QEMUTimerList *timer_list;
    QEMUTimerCB *cb;
    void *opaque;
    int attributes;
    int scale;
    /* Private: the library's lock and armed timer, kept in place. */
    union {
        void *ptr_;
        uint64_t align_;
        unsigned char bytes_[64];
    } impl_;
};

/* The main AioContext's timer lists; filled in by qemu_init_main_loop(). */
extern QEMUTimerListGroup main_loop_tlg;

/* --- clocks ------------------------------------------------------------------------ */

/* The clock's current time in ns. Any thread. */
int64_t qemu_clock_get_ns(QEMUClockType type);

static inline int64_t qemu_clock_get_ms(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / SCALE_MS;
}

static inline int64_t qemu_clock_get_us(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / SCALE_US;
}

/* Stops or restarts QEMU_CLOCK_VIRTUAL (process-wide). Disabling waits for any virtual
 * timer callback in progress, so never call it from one. The other clocks always run:
 * enabling them is a no-op, disabling them is refused with a warning. */
void qemu_clock_enable(QEMUClockType type, bool enabled);

/* --- timer lists --------------------------------------------------------------------- */

/* ns until the list's earliest deadline: -1 none, 0 due. */
int64_t timerlist_deadline_ns(QEMUTimerList *timer_list);
QEMUClockType timerlist_get_clock(QEMUTimerList *timer_list);
/* The soonest deadline over the group's lists, in ns; -1 none. */
int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup *tlg);

/* --- timers -------------------------------------------------------------------------- */

/* Initialises an embedded timer on tlg's list for type (NULL: main_loop_tlg); not
 * armed. scale is the unit of timer_mod()'s argument (SCALE_NS/US/MS). */
void timer_init_full(QEMUTimer *ts, QEMUTimerListGroup *timer_list_group,
                     QEMUClockType type, int scale, int attributes,
                     QEMUTimerCB *cb, void *opaque);

static inline void timer_init(QEMUTimer *ts, QEMUClockType type, int scale,
                              QEMUTimerCB *cb, void *opaque)
{
    timer_init_full(ts, NULL, type, scale, 0, cb, opaque);
}

static inline void timer_init_ns(QEMUTimer *ts, QEMUClockType type, QEMUTimerCB *cb,
                                 void *opaque)
{
    timer_init(ts, type, SCALE_NS, cb, opaque);
}

static inline void timer_init_us(QEMUTimer *ts, QEMUClockType type, QEMUTimerCB *cb,
                                 void *opaque)
{
    timer_init(ts, type, SCALE_US, cb, opaque);
}

static inline void timer_init_ms(QEMUTimer *ts, QEMUClockType type, QEMUTimerCB *cb,
                                 void *opaque)
{
    timer_init(ts, type, SCALE_MS, cb, opaque);
}

/* Allocates and initialises a timer; release it with timer_free(). */
static inline QEMUTimer *timer_new_full(QEMUTimerListGroup *timer_list_group,
                                        QEMUClockType type, int scale, int attributes,
                                        QEMUTimerCB *cb, void *opaque)
{
    QEMUTimer *ts = g_new0(QEMUTimer, 1);
    timer_init_full(ts, timer_list_group, type, scale, attributes, cb, opaque);
    return ts;
}

static inline QEMUTimer *timer_new(QEMUClockType type, int scale, QEMUTimerCB *cb,
                                   void *opaque)
{
    return timer_new_full(NULL, type, scale, 0, cb, opaque);
}

static inline QEMUTimer *timer_new_ns(QEMUClockType type, QEMUTimerCB *cb, void *opaque)
{
    return timer_new(type, SCALE_NS, cb, opaque);
}

static inline QEMUTimer *timer_new_us(QEMUClockType type, QEMUTimerCB *cb, void *opaque)
{
    return timer_new(type, SCALE_US, cb, opaque);
}

static inline QEMUTimer *timer_new_ms(QEMUClockType type, QEMUTimerCB *cb, void *opaque)
{
    return timer_new(type, SCALE_MS, cb, opaque);
}

/* Deletes the timer and releases the library's state for it; ts may be reused with
 * timer_init_*. */
void timer_deinit(QEMUTimer *ts);
/* timer_deinit() and g_free() a timer from timer_new_* (NULL is fine). */
void timer_free(QEMUTimer *ts);

/* Disarms. Any thread. A callback already running still finishes. */
void timer_del(QEMUTimer *ts);
/* Arms (or moves) the timer to fire at expire_time ns on its clock; a time in the past
 * fires on the next iteration. Any thread; safe from the timer's own callback. */
void timer_mod_ns(QEMUTimer *ts, int64_t expire_time);
/* Like timer_mod_ns, but only ever moves an armed timer earlier. */
void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time);
/* timer_mod_ns(ts, expire_time * scale), saturating. */
void timer_mod(QEMUTimer *ts, int64_t expire_time);
void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time);
bool timer_pending(QEMUTimer *ts);
/* Pending and due at current_time (in the timer's scale). */
bool timer_expired(QEMUTimer *timer_head, int64_t current_time);
/* The deadline in ns, or -1 (as uint64_t) if not pending. */
uint64_t timer_expire_time_ns(QEMUTimer *ts);

/* --- helpers ------------------------------------------------------------------------- */

/* The sooner of two timeouts in ns, where -1 means infinite. */
static inline int64_t qemu_soonest_timeout(int64_t timeout1, int64_t timeout2)
{
    /* -1 cast to unsigned is the largest value. */
    return ((uint64_t)timeout1 < (uint64_t)timeout2) ? timeout1 : timeout2;
}

/* ns to ms for poll(): -1 stays -1, 0 stays 0, anything else rounds up (capped at
 * INT32_MAX), so a wait is never shorter than asked. */
int qemu_timeout_ns_to_ms(int64_t ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_TIMER_H */
