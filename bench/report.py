#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Turn aio-bench JSON (Google Benchmark, --benchmark_repetitions with aggregates) into
docs/benchmarks.md: one table per row with medians, ratios to the row's reference, the
goal and PASS/MISS. Standard library only.

Usage: report.py [--command CMD] [--build-dir DIR] [--output FILE] RESULTS.json
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

BATCH = 10_000  # BHs per bh_batch_10k iteration (bench/aio_bench.cpp: kBatch)
REARM = 10_000  # re-arms per timer_rearm iteration (bench/aio_bench.cpp: kRearm)
POOL_BATCH = 1024  # jobs per pool_window64 iteration (bench/aio_bench_mt.cpp: kPoolBatch)
CO_HOPS = 1000  # round trips per co_hop iteration (bench/aio_bench_mt.cpp: kHops)
MISSED_TRIALS = 2000  # trials per missed_notify repetition (aio_bench_mt.cpp: kMissedTrials)

IMPL_ORDER = ["aio", "aio_glib", "glib", "uv", "floor"]

IMPL_DESC = {
    "aio": "aio::Context, `ctx->poll()`",
    "aio_glib": "aio::Context attached to a GMainContext, `g_main_context_iteration()`",
    "glib": "GLib 2.74",
    "uv": "libuv",
    "floor": "floor",
}


def strip_options(name):
    """timer_100k/aio/iterations:1/manual_time -> timer_100k/aio: drops the suffixes Google
    Benchmark appends for ->Iterations(), ->UseManualTime() and friends."""
    return "/".join(p for p in name.split("/")
                    if not (p.startswith(("iterations:", "repeats:", "min_time:", "threads:"))
                            or p in ("manual_time", "real_time", "process_time")))


def load(path):
    """Returns ({run_name: {aggregate_name: entry}}, {run_name: error message}, context)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    runs, errors = {}, {}
    for b in data.get("benchmarks", []):
        name = strip_options(b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        if b.get("run_type") == "aggregate":
            runs.setdefault(name, {})[b["aggregate_name"]] = b
        else:  # no aggregates (a single repetition): treat the run as its own median
            runs.setdefault(name, {}).setdefault("median", b)
    return runs, errors, data.get("context", {})


class Row:
    """Medians of one benchmark name."""

    def __init__(self, runs, name):
        self.name = name
        self.agg = runs.get(name)

    def found(self):
        return self.agg is not None and "median" in self.agg

    # Goals and ratios use CPU time (the benchmark thread's): every row is single-threaded
    # and never sleeps (work is always ready before the loop waits), so CPU time equals
    # wall time on an idle machine and is less disturbed by other load on a busy one.
    def ns(self, key="cpu_time"):
        m = self.agg["median"]
        return m[key] * TO_NS[m.get("time_unit", "ns")]

    def wall(self):
        return self.ns("real_time")

    def cv(self):
        c = self.agg.get("cv") if self.agg else None
        if c is None:
            return None
        return c["cpu_time"]  # a fraction (aggregate_unit "percentage")

    def counter(self, key):
        m = self.agg["median"]
        return m.get(key)


def fmt_ns(v):
    if v is None:
        return "—"
    if v >= 100_000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(v):
    if v is None:
        return "—"
    if v >= 10:
        return f"{v:,.0f}×"
    return f"{v:.2f}×" if v >= 0.1 else f"{v:.3f}×"


def fmt_ms(v):
    return "—" if v is None else f"{v:.2f}"


def fmt_us(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_cv(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def verdict(ok):
    return "—" if ok is None else ("**PASS**" if ok else "**MISS**")


class Report:
    def __init__(self, runs, errors):
        self.runs = runs
        self.errors = errors
        self.out = []
        self.summary = []  # (row, check, measured, goal, ok)
        self.multithread = []  # lines printed by the multithread suite, if given

    def row(self, name):
        return Row(self.runs, name)

    def w(self, line=""):
        self.out.append(line)

    def missing(self, name):
        if name in self.errors:
            return f"skipped: {self.errors[name]}"
        return "not run"

    def check(self, row, what, measured, goal, ok):
        self.summary.append((row, what, measured, goal, ok))
        return ok

    # --- rows ---------------------------------------------------------------------------

    def bh_oneshot_chain(self):
        r = "bh_oneshot_chain"
        self.w(f"## `{r}`: one-shot callback re-armed from its own callback (ns per callback)")
        self.w()
        self.w("aio/aio_glib: `ctx->schedule(fn)` whose callback schedules the next; "
               "glib: `g_idle_source_new` chain on a private GMainContext; "
               "uv: `uv_async_send` to itself from its callback (`UV_RUN_ONCE`); "
               "floor: eventfd write + read in one thread. Reference: glib. "
               "Goal: aio ≤ 0.15× glib.")
        self.w()
        ref = self.row(f"{r}/glib")
        ref_ns = ref.ns() if ref.found() else None
        self.w("| impl | median ns/callback | wall ns | cv | vs glib | heap allocs/callback | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---|---|")
        for impl in IMPL_ORDER:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                if impl != "uv" or name in self.errors:
                    self.w(f"| {impl} | {self.missing(name)} | | | | | | |")
                continue
            ratio = b.ns() / ref_ns if ref_ns else None
            goal, ok = "—", None
            if impl == "aio":
                goal = "≤ 0.15× glib"
                ok = ratio is not None and ratio <= 0.15
                self.check(r, "aio vs glib", fmt_ratio(ratio), goal, ok)
            allocs = b.counter("allocs_per_op")
            self.w(f"| {impl} | {fmt_ns(b.ns())} | {fmt_ns(b.wall())} | {fmt_cv(b.cv())} | "
                   f"{'1 (ref)' if impl == 'glib' else fmt_ratio(ratio)} | "
                   f"{'—' if allocs is None else f'{allocs:g}'} | {goal} | {verdict(ok)} |")
        self.w()

    def bh_batch_10k(self):
        r = "bh_batch_10k"
        self.w(f"## `{r}`: 10k BHs scheduled, then dispatched (ns per BH)")
        self.w()
        self.w("aio: 10k persistent BHs (`ctx->make_bh`, created in setup) scheduled, then "
               "one `ctx->poll(false)`; aio_glib: the same, then `g_main_context_iteration` "
               "until all ran; glib: 10k `g_idle_source_new` one-shots attached, then "
               "drained (GLib's closest equivalent). Heap allocations (global `operator new`, "
               "counted in the benchmark binary) are counted over the schedule + dispatch "
               "phase. Goal: aio and aio_glib ≤ 45 ns/BH and 0 allocations per BH.")
        self.w()
        ref = self.row(f"{r}/glib")
        ref_ns = ref.ns() / BATCH if ref.found() else None
        self.w("| impl | median ns/BH | wall ns/BH | cv | vs glib | heap allocs/BH | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---|---|")
        for impl in ["aio", "aio_glib", "glib"]:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                self.w(f"| {impl} | {self.missing(name)} | | | | | | |")
                continue
            per = b.ns() / BATCH
            allocs = b.counter("allocs_per_bh")
            goal, ok = "—", None
            if impl in ("aio", "aio_glib"):
                goal = "≤ 45 ns, 0 allocs"
                ok = per <= 45 and allocs is not None and allocs == 0
                self.check(r, f"{impl} ns/BH, allocs/BH",
                           f"{fmt_ns(per)} ns, {'?' if allocs is None else f'{allocs:g}'}",
                           goal, ok)
            ratio = per / ref_ns if ref_ns else None
            self.w(f"| {impl} | {fmt_ns(per)} | {fmt_ns(b.wall() / BATCH)} | {fmt_cv(b.cv())} | "
                   f"{'1 (ref)' if impl == 'glib' else fmt_ratio(ratio)} | "
                   f"{'— (malloc not counted)' if allocs is None else f'{allocs:g}'} | "
                   f"{goal} | {verdict(ok)} |")
        self.w()

    def glib_iteration(self):
        r = "glib_iteration"
        self.w(f"## `{r}`: one `g_main_context_iteration` with one ready source (ns per iteration)")
        self.w()
        self.w("aio_glib/N: our source holding one ready BH (a persistent BH rescheduled from "
               "its own callback) plus N never-scheduled BHs and N fd handlers on "
               "never-signalled eventfds; floor/0: a bare always-ready custom GSource; "
               "glib/N: the same bare source plus N idle GLib timeout sources (GLib's "
               "O(sources) cost). Reference: floor/0. Goals: aio_glib/N ≤ 1.3× floor and "
               "flat in N (≤ 1.2× aio_glib/0).")
        self.w()
        ref = self.row(f"{r}/floor/0")
        ref_ns = ref.ns() if ref.found() else None
        base = self.row(f"{r}/aio_glib/0")
        base_ns = base.ns() if base.found() else None
        self.w("| impl | N | median ns/iter | wall ns | cv | vs floor/0 | vs own N=0 | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for impl, ns_ in [("aio_glib", [0, 1000, 10000]), ("floor", [0]),
                          ("glib", [0, 1000, 10000])]:
            own0 = self.row(f"{r}/{impl}/0")
            own0_ns = own0.ns() if own0.found() else None
            for n in ns_:
                name = f"{r}/{impl}/{n}"
                b = self.row(name)
                if not b.found():
                    self.w(f"| {impl} | {n} | {self.missing(name)} | | | | | | |")
                    continue
                ratio = b.ns() / ref_ns if ref_ns else None
                flat = b.ns() / own0_ns if own0_ns else None
                goal, ok = "—", None
                if impl == "aio_glib":
                    ok = ratio is not None and ratio <= 1.3
                    self.check(r, f"aio_glib/{n} vs floor", fmt_ratio(ratio), "≤ 1.3×", ok)
                    goal = "≤ 1.3× floor"
                    if n != 0:
                        flat_ok = base_ns is not None and flat <= 1.2
                        self.check(r, f"aio_glib/{n} vs aio_glib/0 (flat)", fmt_ratio(flat),
                                   "≤ 1.2×", flat_ok)
                        goal += ", ≤ 1.2× N=0"
                        ok = ok and flat_ok
                self.w(f"| {impl} | {n} | {fmt_ns(b.ns())} | {fmt_ns(b.wall())} | {fmt_cv(b.cv())} | "
                       f"{'1 (ref)' if impl == 'floor' else fmt_ratio(ratio)} | "
                       f"{'—' if n == 0 else fmt_ratio(flat)} | {goal} | {verdict(ok)} |")
        self.w()

    def fd_1000_one_ready(self):
        r = "fd_1000_one_ready"
        self.w(f"## `{r}`: 1000 eventfds registered, one made ready per round (ns per event)")
        self.w()
        self.w("Each round writes one eventfd (round-robin), waits, and dispatches its handler, "
               "which reads it. aio: `ctx->poll(true)`; aio_glib: "
               "`g_main_context_iteration(mc, TRUE)`; glib: `g_unix_fd_source_new` on each fd "
               "in a private GMainContext; uv: `uv_poll_t` on each fd; floor: raw "
               "`epoll_wait` + `read`. Reference: floor. Goals: aio ≤ 1.3× floor, "
               "aio_glib ≤ 2× floor.")
        self.w()
        ref = self.row(f"{r}/floor")
        ref_ns = ref.ns() if ref.found() else None
        self.w("| impl | median ns/event | wall ns | cv | vs floor | goal | result |")
        self.w("|---|---:|---:|---:|---:|---|---|")
        goals = {"aio": 1.3, "aio_glib": 2.0}
        for impl in IMPL_ORDER:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                if impl != "uv" or name in self.errors:
                    self.w(f"| {impl} | {self.missing(name)} | | | | | |")
                continue
            ratio = b.ns() / ref_ns if ref_ns else None
            goal, ok = "—", None
            if impl in goals:
                goal = f"≤ {goals[impl]:g}× floor"
                ok = ratio is not None and ratio <= goals[impl]
                self.check(r, f"{impl} vs floor", fmt_ratio(ratio), goal, ok)
            self.w(f"| {impl} | {fmt_ns(b.ns())} | {fmt_ns(b.wall())} | {fmt_cv(b.cv())} | "
                   f"{'1 (ref)' if impl == 'floor' else fmt_ratio(ratio)} | {goal} | "
                   f"{verdict(ok)} |")
        self.w()

    def timer_100k(self):
        r = "timer_100k"
        self.w(f"## `{r}`: 100k one-shot timers, armed then dispatched (libuv's million_timers, scaled down)")
        self.w()
        self.w("One run per repetition: the i-th of 100k timers is armed for (2 + i/1000) ms "
               "after the start (libuv's `million_timers` loop, which bumps a 1 ms timeout "
               "every 1000 timers; the last is due at 101 ms), then the loop runs until all "
               "fired. aio: `aio::Timer::arm_at()` (Clock::realtime, ns), `ctx->poll(true)`; "
               "aio_glib: the same timers, `g_main_context_iteration(mc, TRUE)`; "
               "uv: `uv_timer_start(timeout)`, `uv_run(UV_RUN_DEFAULT)`; glib: "
               "`g_timeout_source_new` + `g_source_set_callback` + `g_source_attach` + "
               "`g_source_unref` per timer (what `g_timeout_add` does) on a private "
               "GMainContext. **insert**: thread CPU time of the arming loop per timer "
               "(aio and uv arm handles constructed beforehand — aio's `Timer` construction "
               "is shown separately as *create*; glib has no separate arm, so its insert "
               "includes creating the source). *insert, warm list*: the same arming done "
               "again after the run, on lists that are empty but whose arrays kept their "
               "capacity (deadlines an hour out, then cancelled), for aio and uv; not part of "
               "the goals: the gap to *insert* is what a fresh aio context pays for growing "
               "its heap array (libuv's heap is intrusive). **dispatch**: thread CPU time "
               "(`CLOCK_THREAD_CPUTIME_ID`, so idle sleep is excluded) from the end of "
               "arming until the last callback, per timer. **lateness**: fire time "
               "(CLOCK_MONOTONIC read in the callback) minus the deadline each "
               "implementation computed (libuv: its cached loop time in whole ms + timeout; "
               "GLib: the source's ready time; aio: the exact ns passed to `arm_at`); "
               "timers whose deadline passed while the loop was still arming count as late. "
               "**last fire**: ms from the start of arming to the last callback (ideal 101). "
               "Medians over repetitions. Reference: uv. Goals: aio insert and dispatch "
               "≤ 1.5× uv, aio mean lateness ≤ 2× uv, no early fires.")
        self.w()
        ref = self.row(f"{r}/uv")
        refv = {}
        if ref.found():
            for k in ("insert_ns", "dispatch_cpu_ns", "late_mean_ms"):
                refv[k] = ref.counter(k)
        self.w("| impl | insert ns/timer | (insert, warm list) | (create ns/timer) | dispatch CPU ns/timer | "
               "mean lateness ms | max lateness ms | last fire ms | early fires | "
               "vs uv (insert / dispatch / lateness) | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        goals = {"insert_ns": 1.5, "dispatch_cpu_ns": 1.5, "late_mean_ms": 2.0}
        labels = {"insert_ns": "insert", "dispatch_cpu_ns": "dispatch CPU",
                  "late_mean_ms": "mean lateness"}
        for impl in ["aio", "aio_glib", "glib", "uv"]:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                if impl != "uv" or name in self.errors:
                    self.w(f"| {impl} | {self.missing(name)} | | | | | | | | | | |")
                continue
            c = {k: b.counter(k) for k in ("insert_ns", "insert_warm_ns", "create_ns", "dispatch_cpu_ns",
                                           "late_mean_ms", "late_max_ms", "last_fire_ms",
                                           "early_fires")}
            ratios = {k: (c[k] / refv[k] if refv.get(k) and c[k] is not None else None)
                      for k in goals}
            goal, ok = "—", None
            early = c["early_fires"]
            if impl == "aio":
                oks = []
                for k, g in goals.items():
                    o = ratios[k] is not None and ratios[k] <= g
                    oks.append(o)
                    self.check(r, f"aio {labels[k]} vs uv", fmt_ratio(ratios[k]),
                               f"≤ {g:g}× uv", o)
                goal = "≤ 1.5× / 1.5× / 2× uv, 0 early"
                ok = all(oks)
            if impl in ("aio", "aio_glib"):
                e_ok = early is not None and early == 0
                self.check(r, f"{impl} early fires", "?" if early is None else f"{early:g}",
                           "0", e_ok)
                if impl == "aio_glib":
                    goal, ok = "0 early", e_ok
                else:
                    ok = ok and e_ok
            self.w(f"| {impl} | {fmt_ns(c['insert_ns'])} | {fmt_ns(c['insert_warm_ns'])} | "
                   f"{fmt_ns(c['create_ns'])} | "
                   f"{fmt_ns(c['dispatch_cpu_ns'])} | {fmt_ms(c['late_mean_ms'])} | "
                   f"{fmt_ms(c['late_max_ms'])} | {fmt_ms(c['last_fire_ms'])} | "
                   f"{'—' if early is None else f'{early:g}'} | "
                   + ("1 (ref)" if impl == "uv" else
                      " / ".join(fmt_ratio(ratios[k]) for k in goals))
                   + f" | {goal} | {verdict(ok)} |")
        self.w()

    def timer_rearm(self):
        r = "timer_rearm"
        self.w(f"## `{r}`: one timer re-armed from its own callback, same timer pass (ns per re-arm)")
        self.w()
        self.w("aio/aio_glib: an `aio::Timer` whose callback calls `arm_at(0)` (a time in the "
               "past, so ≤ the pass's `now`: it runs again in the same timer pass, with no "
               "loop iteration in between) until 10k re-arms, then stops; one benchmark "
               "iteration is `arm_at(0)` + one `ctx->poll(false)` (aio) or one "
               "`g_main_context_iteration(mc, FALSE)` (aio_glib). uv: `uv_timer_start(h, cb, "
               "0, 0)` from the callback, one `uv_run(UV_RUN_NOWAIT)` per 10k (libuv 1.44 "
               "re-runs it in the same `uv__run_timers` pass too). A warm-up pass runs before "
               "timing; heap allocations are counted over the timed loop. Reference: uv. "
               "Goal: aio ≤ 50 ns per re-arm and 0 allocations.")
        self.w()
        ref = self.row(f"{r}/uv")
        ref_ns = ref.ns() / REARM if ref.found() else None
        self.w("| impl | median ns/re-arm | wall ns/re-arm | cv | vs uv | heap allocs/re-arm | "
               "passes that needed a 2nd iteration | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for impl in ["aio", "aio_glib", "uv"]:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                if impl != "uv" or name in self.errors:
                    self.w(f"| {impl} | {self.missing(name)} | | | | | | | |")
                continue
            per = b.ns() / REARM
            allocs = b.counter("allocs_per_rearm")
            short = b.counter("short_passes")
            goal, ok = "—", None
            if impl == "aio":
                goal = "≤ 50 ns, 0 allocs"
                ok = per <= 50 and allocs is not None and allocs == 0
                self.check(r, "aio ns/re-arm, allocs/re-arm",
                           f"{fmt_ns(per)} ns, {'?' if allocs is None else f'{allocs:g}'}",
                           goal, ok)
            ratio = per / ref_ns if ref_ns else None
            self.w(f"| {impl} | {fmt_ns(per)} | {fmt_ns(b.wall() / REARM)} | {fmt_cv(b.cv())} | "
                   f"{'1 (ref)' if impl == 'uv' else fmt_ratio(ratio)} | "
                   f"{'— (malloc not counted)' if allocs is None else f'{allocs:g}'} | "
                   f"{'—' if short is None else f'{short:g}'} | {goal} | {verdict(ok)} |")
        self.w()

    def timer_250us_glib(self):
        r = "timer_250us_glib"
        self.w(f"## `{r}`: a 250 µs periodic timer under `g_main_loop_run` (lateness µs)")
        self.w()
        self.w("One 2 s run per repetition. aio_glib: an `aio::Timer` re-armed from its "
               "callback for **its fire time + 250 µs** (`arm_at(now + 250 µs)`, GLib's own "
               "re-arm rule, so every fire is an independent wake-up and a stall of the loop "
               "makes one late sample rather than a burst of catch-up fires) on our context "
               "attached to a private "
               "GMainContext, driven by `g_main_loop_run`; aio: the same timer driven by "
               "`ctx->poll(true)`, for reference. glib: `g_timeout_add(1 ms)` at its best "
               "(`g_timeout_source_new(1)` on a private GMainContext, `g_main_loop_run`; GLib "
               "re-arms at dispatch time + 1 ms and sleeps in whole ms, so it cannot do "
               "250 µs), lateness against its nominal deadline (the source's ready time when "
               "dispatched). Lateness = CLOCK_MONOTONIC read first thing in the callback "
               "minus the deadline; p50/p99/max are per run, then the median over "
               "repetitions. An early fire (negative lateness) must never happen. "
               "floor: a bare loop around a blocking timerfd (absolute CLOCK_MONOTONIC, no "
               "timer slack) re-armed the same way, the best wake-up the machine offers; "
               "its p99 bounds what any loop can reach here. "
               "CPU µs/fire: the loop thread's CPU time over the run per fire. "
               "Goal: aio_glib p99 ≤ 0.2× glib p99, 0 early fires.")
        self.w()
        ref = self.row(f"{r}/glib")
        ref_p99 = ref.counter("late_p99_us") if ref.found() else None
        self.w("| impl | period | fires | p50 lateness µs | p99 lateness µs | max lateness µs | "
               "fires > 500 µs late | early fires | CPU µs/fire | p99 vs glib | goal | result |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for impl in ["aio", "aio_glib", "glib", "floor"]:
            name = f"{r}/{impl}"
            b = self.row(name)
            if not b.found():
                self.w(f"| {impl} | {self.missing(name)} | | | | | | | | | | |")
                continue
            c = {k: b.counter(k) for k in ("fires", "late_p50_us", "late_p99_us",
                                           "late_max_us", "late_over_500us", "early_fires",
                                           "cpu_us_per_fire")}
            ratio = c["late_p99_us"] / ref_p99 if ref_p99 and c["late_p99_us"] is not None else None
            early = c["early_fires"]
            e_ok = early is not None and early == 0
            goal, ok = "—", None
            if impl == "aio_glib":
                p_ok = ratio is not None and ratio <= 0.2
                self.check(r, "aio_glib p99 lateness vs glib p99", fmt_ratio(ratio),
                           "≤ 0.2× glib", p_ok)
                goal, ok = "≤ 0.2× glib p99, 0 early", p_ok and e_ok
            if impl in ("aio", "aio_glib"):
                self.check(r, f"{impl} early fires", "?" if early is None else f"{early:g}",
                           "0", e_ok)
                if impl == "aio":
                    goal, ok = "0 early", e_ok
            self.w(f"| {impl} | {'1 ms' if impl == 'glib' else '250 µs'} | "
                   f"{'—' if c['fires'] is None else format(c['fires'], ',.0f')} | "
                   f"{fmt_us(c['late_p50_us'])} | {fmt_us(c['late_p99_us'])} | {fmt_us(c['late_max_us'])} | "
                   f"{'—' if c['late_over_500us'] is None else format(c['late_over_500us'], 'g')} | "
                   f"{'—' if early is None else f'{early:g}'} | {fmt_us(c['cpu_us_per_fire'])} | "
                   f"{'1 (ref)' if impl == 'glib' else fmt_ratio(ratio)} | {goal} | "
                   f"{verdict(ok)} |")
        self.w()

    # --- multi-threaded rows (bench/aio_bench_mt.cpp): wall time -------------------------

    def pool(self):
        self.w("")
        self.w("## pool_roundtrip, pool_window64")
        self.w("")
        self.w("Submit → trivial work on a worker → completion callback in the loop thread; 2 "
               "workers everywhere (`set_limits(0, 2)`, `UV_THREADPOOL_SIZE=2`, "
               "`g_thread_pool_new(max_threads=2)`). aio: `ctx->thread_pool().submit(work, done)` "
               "+ `ctx->poll(true)`; uv: `uv_queue_work` + `uv_run(UV_RUN_ONCE)`; glib: "
               "GThreadPool whose worker `g_main_context_invoke`s the completion onto a private "
               "GMainContext. `pool_roundtrip`: 1 job in flight, µs per job; `pool_window64`: "
               "64 in flight, ns per job (batches of "
               f"{POOL_BATCH}). **Wall time** (the loop sleeps). eventfd writes per wake-up = "
               "`eventfd_writes / blocking_waits` from `ctx->stats()`.")
        self.w("")
        self.w("| row | impl | median wall per job | cv | vs uv | vs glib | eventfd writes / wake-up | "
               "wake-ups / job | goal | result |")
        self.w("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
        for r, per in (("pool_roundtrip", 1), ("pool_window64", POOL_BATCH)):
            ref = {i: self.row(f"{r}/{i}") for i in ("uv", "glib")}
            refv = {i: (x.wall() / per if x.found() else None) for i, x in ref.items()}
            for impl in ("aio", "uv", "glib"):
                row = self.row(f"{r}/{impl}")
                if not row.found():
                    self.w(f"| {r} | {impl} | {self.missing(row.name)} | | | | | | | |")
                    continue
                v = row.wall() / per
                vs = {i: (v / refv[i] if refv[i] else None) for i in refv}
                goal, ok = "—", None
                evw = row.counter("evw_per_wake")
                wpj = row.counter("waits_per_item")
                if impl == "aio":
                    if r == "pool_window64":
                        goal = "≤ 1.0× uv, ≤ 0.25× glib, ≤ 1 evw/wake"
                        ok1 = vs["uv"] is not None and vs["uv"] <= 1.0
                        ok2 = vs["glib"] is not None and vs["glib"] <= 0.25
                        self.check(r, "aio vs uv (ns/job)", fmt_ratio(vs["uv"]), "≤ 1.0×", ok1)
                        self.check(r, "aio vs glib (ns/job)", fmt_ratio(vs["glib"]), "≤ 0.25×", ok2)
                    else:
                        best = min(x for x in refv.values() if x)
                        goal = "≤ 1.0× best peer, ≤ 1 evw/wake"
                        ok1 = v / best <= 1.0
                        self.check(r, "aio vs best peer (µs/job)", fmt_ratio(v / best), "≤ 1.0×", ok1)
                        ok2 = True
                    ok3 = evw is not None and evw <= 1.0
                    self.check(r, "eventfd writes per wake-up", f"{evw:.2f}", "≤ 1", ok3)
                    ok = ok1 and ok2 and ok3
                val = fmt_us(v / 1e3) + " µs" if per == 1 else fmt_ns(v) + " ns"
                self.w(f"| {r} | {impl} | {val} | {fmt_cv(row.cv())} | "
                       f"{fmt_ratio(vs['uv'])} | {fmt_ratio(vs['glib'])} | "
                       f"{'—' if evw is None else f'{evw:.2f}'} | "
                       f"{'—' if wpj is None else f'{wpj:.3f}'} | {goal} | {verdict(ok)} |")

    def xthread_rtt(self):
        r = "xthread_rtt"
        places = [(0, "different CPUs (0, 1)"), (1, "same CPU (0)"), (2, "unpinned")]
        self.w("")
        self.w("## xthread_rtt")
        self.w("")
        self.w("Round trip between two threads, **wall µs per round trip** (median of 5). aio: "
               "the benchmark thread schedules a one-shot BH on an `aio::IOThread`'s context, "
               "which schedules one back onto a context the benchmark thread drives with "
               "`poll(true)`; both contexts get the same `set_poll_params(max_ns)` (0 = off, "
               "32768 = the IOThread default, adaptive). glib: `g_main_context_invoke` between "
               "two GMainContexts; uv: `uv_async_send` between two loops; floors: eventfd + "
               "`epoll_wait`, raw `FUTEX_WAIT/WAKE`, and an atomic-flag spin (with `sched_yield` "
               "every 256 pauses so that the same-CPU case progresses). Placement: pinned with "
               "`pthread_setaffinity_np`. The poll-hit / busy-poll columns are per round trip "
               "for each side (peer = IOThread, main = benchmark thread).")
        self.w("")
        self.w("| placement | impl | µs / round trip | cv | vs floor_eventfd | vs floor_spin | "
               "eventfd writes / rtt | poll hits peer / main | busy-poll ns peer / main | "
               "blocking waits peer / main | goal | result |")
        self.w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        impls = [("aio", 0, "aio, polling off"), ("aio", 32768, "aio, poll 32768"),
                 ("glib", 0, "glib"), ("uv", 0, "uv"), ("floor_eventfd", 0, "floor eventfd"),
                 ("floor_futex", 0, "floor futex"), ("floor_spin", 0, "floor spin")]
        for p, pname in places:
            ef = self.row(f"{r}/floor_eventfd/{p}/0")
            sp = self.row(f"{r}/floor_spin/{p}/0")
            off = self.row(f"{r}/aio/{p}/0")
            efv = ef.wall() if ef.found() else None
            spv = sp.wall() if sp.found() else None
            offv = off.wall() if off.found() else None
            for impl, poll, label in impls:
                row = self.row(f"{r}/{impl}/{p}/{poll}")
                if not row.found():
                    self.w(f"| {pname} | {label} | {self.missing(row.name)} | | | | | | | | | |")
                    continue
                v = row.wall()
                goal, ok = "—", None
                c = row.counter
                if impl == "aio" and poll == 0:
                    goal = "≤ 1.1× floor eventfd"
                    ok = efv is not None and v / efv <= 1.1
                    self.check(r, f"polling off, {pname}: vs eventfd floor",
                               fmt_ratio(v / efv if efv else None), "≤ 1.1×", ok)
                elif impl == "aio" and p == 0:
                    goal = "≤ 3× floor spin"
                    ok = spv is not None and v / spv <= 3.0
                    self.check(r, f"poll 32768, {pname}: vs spin floor",
                               fmt_ratio(v / spv if spv else None), "≤ 3×", ok)
                elif impl == "aio" and p == 1:
                    goal = "≤ 1.5× aio polling off"
                    ok = offv is not None and v / offv <= 1.5
                    self.check(r, f"poll 32768, {pname}: vs polling off",
                               fmt_ratio(v / offv if offv else None), "≤ 1.5×", ok)
                if impl == "aio":
                    extra = (f"{c('evw_per_rtt'):.3f} | {c('peer_poll_hits'):.3f} / "
                             f"{c('main_poll_hits'):.3f} | {c('peer_poll_ns'):,.0f} / "
                             f"{c('main_poll_ns'):,.0f} | {c('peer_waits'):.3f} / {c('main_waits'):.3f}")
                else:
                    extra = "— | — | — | —"
                self.w(f"| {pname} | {label} | {fmt_us(v / 1e3)} | {fmt_cv(row.cv())} | "
                       f"{fmt_ratio(v / efv if efv else None)} | "
                       f"{fmt_ratio(v / spv if spv else None)} | {extra} | {goal} | {verdict(ok)} |")

    def co_hop(self):
        r = "co_hop"
        places = [(0, "different CPUs (0, 1)"), (1, "same CPU (0)"), (2, "unpinned")]
        self.w("")
        self.w("## co_hop")
        self.w("")
        self.w(f"A coroutine on IOThread A does `co_await switch_to(b)` then `co_await "
               f"switch_to(a)`: one round trip A → B → A, **wall µs per round trip**, "
               f"{CO_HOPS} round trips per iteration (the spawn that starts a batch and the "
               f"futex wake that ends it cost 1/{CO_HOPS} each), median of 5. Peer `bh`: "
               f"the same ping-pong between the same two IOThreads made of one-shot BHs "
               f"(`a.schedule` → `b.schedule` → …). `xthread_rtt` (benchmark thread ↔ one "
               f"IOThread, one-shot BHs) is repeated for reference. Both IOThreads get "
               f"`set_poll_params(max_ns)`; placement pins A to CPU 0 and B to CPU 1 (or "
               f"both to CPU 0). Counters are per round trip, both threads together. "
               f"Goal (ours; performance.md has none for this row): a coroutine hop costs "
               f"≤ 1.5× a one-shot BH hop.")
        self.w("")
        self.w("| placement | poll max_ns | co_hop µs | bh hop µs | co / bh | xthread_rtt µs | "
               "eventfd writes co / bh | poll hits co / bh | blocking waits co / bh | goal | "
               "result |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for poll in (0, 32768):
            for p, pname in places:
                co = self.row(f"{r}/aio/{p}/{poll}")
                bh = self.row(f"{r}/bh/{p}/{poll}")
                xt = self.row(f"xthread_rtt/aio/{p}/{poll}")
                if not co.found() or not bh.found():
                    missing = co if not co.found() else bh
                    self.w(f"| {pname} | {poll} | {self.missing(missing.name)} | | | | | | | | |")
                    continue
                cv = co.wall() / CO_HOPS
                bv = bh.wall() / CO_HOPS
                xv = xt.wall() if xt.found() else None
                ratio = cv / bv
                ok = self.check(r, f"{pname}, poll {poll}: coroutine vs one-shot BH hop",
                                fmt_ratio(ratio), "≤ 1.5×", ratio <= 1.5)

                def pair(key):
                    return f"{co.counter(key):.3f} / {bh.counter(key):.3f}"
                self.w(f"| {pname} | {poll} | {fmt_us(cv / 1e3)} | {fmt_us(bv / 1e3)} | "
                       f"{fmt_ratio(ratio)} | {fmt_us(xv / 1e3) if xv else '—'} | "
                       f"{pair('evw_per_rtt')} | {pair('poll_hits_per_rtt')} | "
                       f"{pair('waits_per_rtt')} | ≤ 1.5× bh | {verdict(ok)} |")

    def comutex_contended(self):
        r = "comutex_contended"
        self.w("")
        self.w("## comutex_contended")
        self.w("")
        self.w("QEMU's test-aio-multithread mutex scenarios: N IOThreads each run a task "
               "looping `co_await m.lock(); ++counter; m.unlock();` on one shared `aio::CoMutex` "
               "for 50 ms per iteration (4 iterations, manual time start to stop), against N "
               "plain threads doing the same with `std::mutex`. N = 5 is QEMU's contended "
               "case, N = 2 its hand-off case. **Lock/unlock pairs per second**, median of 5. "
               "performance.md row 12 asks for CoMutex ≥ pthread.")
        self.w("")
        self.w("| threads | CoMutex pairs/s | cv | std::mutex pairs/s | CoMutex / std::mutex | "
               "goal | result |")
        self.w("|---:|---:|---:|---:|---:|---|---|")
        for n in (5, 2):
            co = self.row(f"{r}/aio/{n}")
            sm = self.row(f"{r}/std_mutex/{n}")
            if not co.found() or not sm.found():
                missing = co if not co.found() else sm
                self.w(f"| {n} | {self.missing(missing.name)} | | | | | |")
                continue
            cr = co.counter("items_per_second")
            sr = sm.counter("items_per_second")
            c = co.agg.get("cv", {}).get("items_per_second")
            ok = self.check(r, f"{n} threads: CoMutex vs std::mutex", fmt_ratio(cr / sr),
                            "≥ 1.0×", cr >= sr)
            self.w(f"| {n} | {cr / 1e6:.2f} M | {fmt_cv(c)} | {sr / 1e6:.2f} M | "
                   f"{fmt_ratio(cr / sr)} | ≥ 1.0× | {verdict(ok)} |")
        if self.multithread:
            self.w("")
            self.w("The multithread suite in the same run (`AIO_MT_SECONDS=1 "
                   "tests/test-multithread`, printed lines):")
            self.w("")
            self.w("```")
            self.out.extend(self.multithread)
            self.w("```")

    def idle_cpu(self):
        r = "idle_cpu"
        row = self.row(f"{r}/aio")
        self.w("")
        self.w("## idle_cpu")
        self.w("")
        self.w("An `aio::IOThread` with default polling (32768) and no events for 2 s; CPU time "
               "of that thread from `pthread_getcpuclockid` (ns resolution), as % of the wall "
               "time. Median of 5.")
        self.w("")
        self.w("| impl | CPU % | loop iterations in 2 s | busy-poll µs | goal | result |")
        self.w("|---|---:|---:|---:|---|---|")
        if not row.found():
            self.w(f"| aio | {self.missing(row.name)} | | | | |")
            return
        pct = row.counter("cpu_pct")
        ok = self.check(r, "IOThread CPU while idle", f"{pct:.3f}%", "< 1%", pct < 1.0)
        self.w(f"| aio | {pct:.3f} | {row.counter('iterations_2s'):g} | "
               f"{row.counter('busy_poll_us'):g} | < 1% | {verdict(ok)} |")

    def missed_notify(self):
        r = "missed_notify"
        self.w("")
        self.w("## missed_notify")
        self.w("")
        self.w(f"An IOThread sleeps on a 500 ms timer; the benchmark thread sleeps 0.5 ms, then "
               f"schedules a one-shot BH and spins until it ran: wake latency = BH run time − "
               f"schedule time. **{MISSED_TRIALS} trials per repetition** (shortened from 10 000 "
               f"to fit the run), 5 repetitions; the table gives the median over repetitions of "
               f"each repetition's p50/p99/max, and the worst max. Goal: every trial ≤ 2× "
               f"`xthread_rtt` (aio, polling off, unpinned).")
        self.w("")
        self.w("| poll max_ns | p50 µs | p99 µs | max µs (median) | max µs (worst rep) | "
               "2× xthread_rtt µs | goal | result |")
        self.w("|---:|---:|---:|---:|---:|---:|---|---|")
        ref = self.row("xthread_rtt/aio/2/0")
        lim = 2 * ref.wall() / 1e3 if ref.found() else None
        for poll in (0, 32768):
            row = self.row(f"{r}/aio/{poll}")
            if not row.found():
                self.w(f"| {poll} | {self.missing(row.name)} | | | | | | |")
                continue
            # the "max" aggregate (ComputeStatistics in aio_bench_mt.cpp) is the worst
            # repetition; without it fall back to the median repetition's max
            worst = row.agg["max"].get("max_us") if "max" in row.agg else None
            worst = worst if worst is not None else row.counter("max_us")
            ok = lim is not None and worst <= lim
            self.check(r, f"poll {poll}: worst trial vs 2× xthread_rtt",
                       f"{worst:,.0f} µs", f"≤ {lim:.0f} µs" if lim else "—", ok)
            self.w(f"| {poll} | {row.counter('p50_us'):.1f} | {row.counter('p99_us'):.1f} | "
                   f"{row.counter('max_us'):,.0f} | {worst:,.0f} | "
                   f"{'—' if lim is None else f'{lim:.0f}'} | every trial ≤ 2× rtt | {verdict(ok)} |")


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def pkg_version(name):
    try:
        r = subprocess.run(["pkg-config", "--modversion", name], capture_output=True,
                           text=True, check=False, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def build_options(build_dir):
    opts = {}
    if not build_dir:
        return opts
    path = os.path.join(build_dir, "meson-info", "intro-buildoptions.json")
    try:
        with open(path, encoding="utf-8") as f:
            for o in json.load(f):
                if o.get("name") in ("buildtype", "b_ndebug", "optimization", "debug"):
                    opts[o["name"]] = o.get("value")
    except (OSError, ValueError):
        pass
    return opts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="aio-bench JSON output")
    ap.add_argument("--command", default=None, help="the exact command that produced it")
    ap.add_argument("--build-dir", default=None, help="meson build dir (for the build type)")
    ap.add_argument("--output", "-o", default="-", help="Markdown file (default stdout)")
    ap.add_argument("--multithread", default=None,
                    help="stdout of tests/test-multithread (its printed rates are quoted)")
    args = ap.parse_args()

    runs, errors, ctx = load(args.results)
    rep = Report(runs, errors)
    if args.multithread:
        try:
            with open(args.multithread, encoding="utf-8") as f:
                rep.multithread = [ln.rstrip() for ln in f
                                   if "iterations/second" in ln or ln.startswith("scheduled ")]
        except OSError:
            pass
    rep.bh_oneshot_chain()
    rep.bh_batch_10k()
    rep.glib_iteration()
    rep.fd_1000_one_ready()
    rep.timer_100k()
    rep.timer_rearm()
    rep.timer_250us_glib()
    rep.pool()
    rep.xthread_rtt()
    rep.co_hop()
    rep.comutex_contended()
    rep.idle_cpu()
    rep.missed_notify()

    opts = build_options(args.build_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_avg = ctx.get("load_avg")
    head = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/report.py from aio-bench JSON; rerun bench/run.sh to "
        "refresh. -->",
        "",
        "aio::Context against GLib, libuv and the kernel floor, all rows from **one run of "
        "one binary** (`aio-bench`, bench/aio_bench.cpp), so compare ratios within this "
        "page, not absolute times across machines (run-to-run drift on a shared VM "
        "is about ±20%). Each repetition reports a mean per "
        "operation; the tables give the **median over repetitions of the benchmark thread's "
        "CPU time** (goals and ratios use it: every row is single-threaded and never "
        "sleeps, since work is made ready before the loop waits, so CPU time equals wall "
        "time on an idle machine and is less disturbed when other processes share the "
        "vCPUs), the median wall time next to it, and cv, the coefficient of variation of "
        "CPU time across repetitions. The timer rows are the exception: "
        "`timer_100k` and `timer_250us_glib` sleep by design (they wait for deadlines), run "
        "once per repetition and report their own counters (thread CPU time, lateness), "
        "again as the median over repetitions; `timer_rearm` is an ordinary CPU-bound row.",
        "",
        "## Run",
        "",
        f"- Date: {now} (benchmark start: {ctx.get('date', '?')})",
        f"- Machine: {nproc()} CPUs (nproc), `{cpu_model()}`, "
        f"{ctx.get('mhz_per_cpu', '?')} MHz, Linux {platform.release()}"
        + (f", load average at start {', '.join(f'{x:.2f}' for x in load_avg)}"
           if load_avg else ""),
        f"- Build: buildtype={opts.get('buildtype', '?')}, "
        f"b_ndebug={opts.get('b_ndebug', '?')}; GLib {pkg_version('glib-2.0')}, "
        f"libuv {pkg_version('libuv')}, Google Benchmark {pkg_version('benchmark')}",
        f"- Command: `{args.command or '(not recorded)'}`",
        "",
        "## Goals",
        "",
        "| row | check | measured | goal | result |",
        "|---|---|---:|---|---|",
    ]
    for row, what, measured, goal, ok in rep.summary:
        head.append(f"| `{row}` | {what} | {measured} | {goal} | {verdict(ok)} |")
    passed = sum(1 for s in rep.summary if s[4])
    head += ["", f"{passed} of {len(rep.summary)} checks pass.", ""]
    if errors:
        head.append("Skipped benchmarks: " +
                    "; ".join(f"`{k}`: {v}" for k, v in sorted(errors.items())))
        head.append("")

    notes = [
        "## Method notes",
        "",
        "- Reproduce: `meson setup build && ninja -C build && bench/run.sh build` "
        "(bench/run.sh runs the command above, then this report). "
        "`meson test -C build --benchmark` runs a short smoke pass "
        "(`--benchmark_min_time=0.01`).",
        "- Everything (contexts, BHs, eventfds, sources, libuv handles) is created before "
        "the timed loop and torn down after it; the loops only schedule, signal and "
        "dispatch (exception: `timer_100k/glib`, whose insert creates the sources, as "
        "`g_timeout_add` does). Each benchmark checks that exactly the expected number of "
        "callbacks ran and reports an error otherwise.",
        "- Heap allocations are counted by replacing the global `operator new` in the "
        "benchmark binary (it also intercepts the library's calls). `malloc()` is not "
        "counted, so the column is only meaningful for aio/aio_glib. The one-shot chain "
        "shows the one allocation per `schedule()` the API documents.",
        "- `glib_iteration/*/10000` needs ~10k fds: aio-bench raises RLIMIT_NOFILE to the "
        "hard limit and skips the row with an error if that is not enough.",
        "- Timer lateness is wall-clock behaviour: on a shared VM a runnable neighbour "
        "delays the wake-up of a sleeping loop, so the lateness columns (unlike the CPU "
        "columns) are only as good as the machine was quiet (see the load average above). "
        "Sleeping waits are subject to the kernel's timer slack (50 µs by default) for "
        "poll/ppoll timeouts; a timerfd (used by aio_glib) is not.",
        "- The multi-threaded rows (`pool_*`, `xthread_rtt`, `co_hop`, `comutex_contended`, "
        "`idle_cpu`, `missed_notify`; "
        "bench/aio_bench_mt.cpp) sleep by design and are reported in **wall time** "
        "(`UseRealTime`, `--benchmark_min_time` 0.2 s each), not CPU time.",
        "- On a shared VM, other processes inflate wall time far more than CPU time; the "
        "wall column shows how busy the machine was. Rerun when the load average is low "
        "for tighter numbers.",
    ]
    text = "\n".join(head + rep.out + notes).rstrip() + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
