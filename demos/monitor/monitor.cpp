// SPDX-License-Identifier: LGPL-2.1-or-later
// The loop monitor: N IOThreads pass one token around a ring of contexts, flat out.
//
// How it uses aiocontext (docs/demos.md walks through it):
//   - each IOThread owns a context; on it lives one persistent bottom half, the ring's
//     "receive the token" callback, which runs in that IOThread and schedules the next
//     thread's bottom half (aio::BottomHalf::schedule() is safe from any thread and
//     allocation-free);
//   - the GTK thread never waits on the ring: a 100 ms aio::Timer on the main context
//     samples the threads' counters (atomics) and Context::stats(), reads per-thread CPU
//     time from /proc/self/task/<tid>/stat, and redraws the plot;
//   - the switch calls Context::set_poll_params(32768) or (0) on every IOThread's context:
//     adaptive busy polling on or off, live;
//   - changing the thread count parks the token, stops and joins every IOThread, and
//     builds a new ring.
#include "monitor.hpp"

#include <aio/iothread.hpp>
#include <aio/timer.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

namespace monitor {

std::atomic<int> iothreads_started{0};
std::atomic<int> iothreads_joined{0};

namespace {

constexpr int kMaxThreads = 8;
constexpr std::int64_t kPollMaxNs = 32768;  // what IOThreads use by default
constexpr int kSampleMs = 100;
constexpr double kHistorySeconds = 30;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Rgb {
    double r, g, b;
};
constexpr std::array<Rgb, kMaxThreads> kColours = {{
    {0.122, 0.467, 0.706},  // blue
    {1.000, 0.498, 0.055},  // orange
    {0.173, 0.627, 0.173},  // green
    {0.839, 0.153, 0.157},  // red
    {0.580, 0.404, 0.741},  // purple
    {0.549, 0.337, 0.294},  // brown
    {0.890, 0.467, 0.761},  // pink
    {0.090, 0.745, 0.812},  // cyan
}};

std::int64_t now_us() { return g_get_monotonic_time(); }

// utime + stime of a thread (or of the process with tid 0), in clock ticks; -1 on error.
long cpu_ticks(int tid)
{
    char path[64];
    if (tid == 0) {
        std::snprintf(path, sizeof path, "/proc/self/stat");
    } else {
        std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    }
    std::ifstream f(path);
    std::string line;
    if (!std::getline(f, line)) {
        return -1;
    }
    // The command name may contain spaces: fields are counted after its closing ')'.
    const std::size_t paren = line.rfind(')');
    if (paren == std::string::npos) {
        return -1;
    }
    std::istringstream in(line.substr(paren + 1));
    std::string field;
    for (int i = 3; i <= 13; ++i) {  // state .. cmajflt
        in >> field;
    }
    long utime = 0;
    long stime = 0;
    if (!(in >> utime >> stime)) {
        return -1;
    }
    return utime + stime;
}

// CPU % over the last few samples of one tick counter.
class CpuMeter {
public:
    double update(long ticks, std::int64_t t_us)
    {
        if (ticks < 0) {
            return kNaN;
        }
        points_.push_back({t_us, ticks});
        while (points_.size() > 6) {  // about half a second: ticks are 10 ms coarse
            points_.pop_front();
        }
        const auto& [t0, k0] = points_.front();
        if (t_us - t0 < 50'000) {
            return kNaN;
        }
        static const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
        return 100.0 * static_cast<double>(ticks - k0) / hz / ((t_us - t0) / 1e6);
    }

private:
    std::deque<std::pair<std::int64_t, long>> points_;
};

// --- the ring -----------------------------------------------------------------------------

class Ring {
public:
    struct Slot {
        std::shared_ptr<aio::IOThread> thread;
        aio::BottomHalf bh;                       // "the token arrived", runs in `thread`
        std::atomic<std::int64_t> sent_ns{0};     // when the previous thread passed it on
        std::atomic<std::uint64_t> hops{0};       // written by `thread`, read by the GUI
        std::atomic<std::uint64_t> hop_ns{0};     // sum of wake-up (hand-over) latencies
        std::atomic<std::uint64_t> laps{0};
        std::atomic<std::uint64_t> lap_ns{0};     // sum of round trips
        std::atomic<int> tid{0};
        std::int64_t last_seen_ns = 0;            // `thread` only
    };

    Ring(int n, bool polling)
    {
        try {
            for (int i = 0; i < n; ++i) {
                auto s = std::make_unique<Slot>();
                s->thread = aio::IOThread::create("ring" + std::to_string(i));
                ++iothreads_started;
                s->thread->context().set_poll_params(polling ? kPollMaxNs : 0);
                slots_.push_back(std::move(s));
            }
            for (int i = 0; i < n; ++i) {
                slots_[static_cast<std::size_t>(i)]->bh =
                    slots_[static_cast<std::size_t>(i)]->thread->context().make_bh(
                        [this, i] { on_token(i); }, "ring-token");
            }
        } catch (...) {
            shutdown();
            throw;
        }
        // Throw the token in.
        slots_[0]->sent_ns.store(aio::clock_ns(aio::Clock::realtime), std::memory_order_relaxed);
        started_ = true;
        slots_[0]->bh.schedule();
    }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring() { shutdown(); }

    int size() const { return static_cast<int>(slots_.size()); }
    Slot& slot(int i) { return *slots_[static_cast<std::size_t>(i)]; }

    // Any thread: set_poll_params() does its own locking.
    void set_polling(bool on)
    {
        for (auto& s : slots_) {
            s->thread->context().set_poll_params(on ? kPollMaxNs : 0);
        }
    }

private:
    // Runs in IOThread i, as its bottom half.
    void on_token(int i) noexcept
    {
        Slot& s = slot(i);
        const std::int64_t now = aio::clock_ns(aio::Clock::realtime);
        if (s.tid.load(std::memory_order_relaxed) == 0) {
            s.tid.store(static_cast<int>(syscall(SYS_gettid)), std::memory_order_relaxed);
        }
        s.hop_ns.fetch_add(
            static_cast<std::uint64_t>(now - s.sent_ns.load(std::memory_order_relaxed)),
            std::memory_order_relaxed);
        s.hops.fetch_add(1, std::memory_order_relaxed);
        if (s.last_seen_ns != 0) {
            s.lap_ns.fetch_add(static_cast<std::uint64_t>(now - s.last_seen_ns),
                               std::memory_order_relaxed);
            s.laps.fetch_add(1, std::memory_order_relaxed);
        }
        s.last_seen_ns = now;
        if (stopping_.load(std::memory_order_acquire)) {
            parked_.store(true, std::memory_order_release);  // keep the token: the ring stops
            parked_.notify_all();
            return;
        }
        Slot& next = slot((i + 1) % size());
        next.sent_ns.store(aio::clock_ns(aio::Clock::realtime), std::memory_order_relaxed);
        next.bh.schedule();  // wakes the next IOThread (or its busy poll sees it)
    }

    // Parks the token, then stops and joins every IOThread, then deletes the bottom halves.
    void shutdown()
    {
        stopping_.store(true, std::memory_order_release);
        if (started_) {
            parked_.wait(false, std::memory_order_acquire);  // at most one hop away
        }
        for (auto& s : slots_) {
            s->thread->stop();
            ++iothreads_joined;
        }
        for (auto& s : slots_) {
            s->bh.reset();
        }
        slots_.clear();
    }

    std::vector<std::unique_ptr<Slot>> slots_;
    bool started_ = false;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> parked_{false};
};

// --- the window ---------------------------------------------------------------------------

struct ThreadSample {
    double hops_s = kNaN;
    double rtt_us = kNaN;      // round trip: one lap of the ring, seen by this thread
    double hop_us = kNaN;      // wake-up: from schedule() in the previous thread to here
    double cpu = kNaN;         // % of one CPU
    double poll_hits_s = kNaN; // Context::stats().busy_poll_hits per second
    double eventfd_s = kNaN;   // Context::stats().eventfd_writes per second
    double asleep = kNaN;      // % of the time in the kernel waiting
};

struct Sample {
    double t = 0;  // seconds since the window opened
    bool polling = false;
    std::vector<ThreadSample> th;
};

enum Column { kName, kHops, kRtt, kHop, kCpu, kPollHits, kEventfd, kAsleep, kColumns };
constexpr const char* kHeadings[kColumns] = {
    "IOThread", "hops/s", "round trip", "wake-up", "CPU", "busy-poll hits/s",
    "eventfd wake-ups/s", "asleep",
};

class Monitor {
public:
    Monitor(GtkApplication* app, demo::Options* opts);
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;
    ~Monitor();

    GtkWidget* window() const { return window_; }

private:
    static void on_draw(GtkDrawingArea*, cairo_t* cr, int w, int h, gpointer self);
    static void on_threads_changed(GtkSpinButton* spin, gpointer self);
    static void on_polling_changed(GObject* sw, GParamSpec*, gpointer self);
    static void on_destroy(GtkWidget*, gpointer self);

    void restart(int n);
    void sample();
    void update_table(const Sample& s);
    void draw(cairo_t* cr, int w, int h);
    void draw_text(cairo_t* cr, double x, double y, const std::string& text, double align,
                   bool bold = false);

    void self_test_step(double t);
    void self_test_finish();

    struct Prev {
        std::uint64_t hops = 0, hop_ns = 0, laps = 0, lap_ns = 0;
        std::uint64_t poll_hits = 0, eventfd = 0, sleep_ns = 0;
        CpuMeter cpu;
    };

    GtkApplication* app_;
    demo::Options* opts_;  // null unless self-testing
    aio::Context& ctx_;

    GtkWidget* window_ = nullptr;
    GtkWidget* spin_ = nullptr;
    GtkWidget* switch_ = nullptr;
    GtkWidget* plot_ = nullptr;
    GtkWidget* summary_ = nullptr;
    GtkWidget* cells_[kMaxThreads][kColumns] = {};

    std::unique_ptr<Ring> ring_;
    bool polling_ = true;
    int restarts_ = 0;
    std::vector<Prev> prev_;
    CpuMeter proc_cpu_;
    std::int64_t t0_us_ = 0;
    std::int64_t prev_us_ = 0;
    std::deque<Sample> history_;
    aio::Timer sample_timer_;

    // Self-test state.
    int st_state_ = 0;
    struct Phase {
        std::vector<std::uint64_t> hops;
        std::uint64_t laps = 0, lap_ns = 0, hop_count = 0, hop_ns = 0;
        std::uint64_t poll_hits = 0, eventfd = 0;
        long proc_ticks = 0;
        std::int64_t us = 0;
    };
    Phase st_mark_;            // counters at the start of the running phase
    Phase st_on_, st_off_;     // totals of the two phases
    bool st_cpu_seen_ = false;
    aio::Timer st_shot_;
    aio::Timer st_watchdog_;
    Phase counters();
};

Monitor::Monitor(GtkApplication* app, demo::Options* opts)
    : app_(app), opts_(opts), ctx_(demo::main_context())
{
    window_ = gtk_application_window_new(app);
    gtk_window_set_title(GTK_WINDOW(window_), "Loop monitor \u2014 aiocontext");
    gtk_window_set_default_size(GTK_WINDOW(window_), 940, 780);

    GtkWidget* header = gtk_header_bar_new();
    gtk_header_bar_pack_start(GTK_HEADER_BAR(header), gtk_label_new("IOThreads"));
    spin_ = gtk_spin_button_new_with_range(1, kMaxThreads, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(spin_), opts_ != nullptr ? 2 : 3);
    gtk_widget_set_tooltip_text(spin_, "Threads in the ring (stops, joins and recreates them)");
    g_signal_connect(spin_, "value-changed", G_CALLBACK(on_threads_changed), this);
    gtk_header_bar_pack_start(GTK_HEADER_BAR(header), spin_);
    switch_ = gtk_switch_new();
    gtk_switch_set_active(GTK_SWITCH(switch_), TRUE);
    gtk_widget_set_valign(switch_, GTK_ALIGN_CENTER);
    gtk_widget_set_tooltip_text(switch_, "Context::set_poll_params(32768) on, (0) off");
    g_signal_connect(switch_, "notify::active", G_CALLBACK(on_polling_changed), this);
    gtk_header_bar_pack_end(GTK_HEADER_BAR(header), switch_);
    gtk_header_bar_pack_end(GTK_HEADER_BAR(header), gtk_label_new("Adaptive busy polling"));
    gtk_window_set_titlebar(GTK_WINDOW(window_), header);

    GtkWidget* box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    plot_ = gtk_drawing_area_new();
    gtk_drawing_area_set_content_width(GTK_DRAWING_AREA(plot_), 900);
    gtk_drawing_area_set_content_height(GTK_DRAWING_AREA(plot_), 470);
    gtk_widget_set_vexpand(plot_, TRUE);
    gtk_drawing_area_set_draw_func(GTK_DRAWING_AREA(plot_), on_draw, this, nullptr);
    gtk_box_append(GTK_BOX(box), plot_);

    GtkWidget* grid = gtk_grid_new();
    gtk_grid_set_column_spacing(GTK_GRID(grid), 18);
    gtk_grid_set_row_spacing(GTK_GRID(grid), 2);
    gtk_widget_set_margin_start(grid, 14);
    gtk_widget_set_margin_end(grid, 14);
    for (int c = 0; c < kColumns; ++c) {
        GtkWidget* h = gtk_label_new(nullptr);
        std::string m = std::string("<b>") + kHeadings[c] + "</b>";
        gtk_label_set_markup(GTK_LABEL(h), m.c_str());
        gtk_label_set_xalign(GTK_LABEL(h), c == kName ? 0 : 1);
        gtk_grid_attach(GTK_GRID(grid), h, c, 0, 1, 1);
        for (int r = 0; r < kMaxThreads; ++r) {
            GtkWidget* l = gtk_label_new("");
            gtk_label_set_xalign(GTK_LABEL(l), c == kName ? 0 : 1);
            gtk_widget_add_css_class(l, "numeric");
            gtk_grid_attach(GTK_GRID(grid), l, c, r + 1, 1, 1);
            cells_[r][c] = l;
        }
    }
    gtk_box_append(GTK_BOX(box), grid);

    summary_ = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(summary_), 0);
    gtk_widget_set_margin_start(summary_, 14);
    gtk_widget_set_margin_end(summary_, 14);
    gtk_widget_set_margin_bottom(summary_, 10);
    gtk_label_set_wrap(GTK_LABEL(summary_), TRUE);
    gtk_box_append(GTK_BOX(box), summary_);
    gtk_window_set_child(GTK_WINDOW(window_), box);
    g_signal_connect(window_, "destroy", G_CALLBACK(on_destroy), this);

    t0_us_ = prev_us_ = now_us();
    restart(gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(spin_)));

    // The sampler: a timer on the main context, so it runs in the GTK thread and may
    // touch widgets. It only reads what the IOThreads publish (atomics, stats()).
    sample_timer_ = aio::Timer(
        ctx_, aio::Clock::realtime,
        [this] {
            sample_timer_.arm_after(kSampleMs);
            sample();
        },
        aio::Scale::ms, "monitor-sample");
    sample_timer_.arm_after(kSampleMs);

    if (opts_ != nullptr) {
        st_watchdog_ = aio::Timer(
            ctx_, aio::Clock::realtime,
            [this] {
                g_printerr("monitor: FAIL: timed out (script state %d)\n", st_state_);
                opts_->exit_code = 1;
                g_application_quit(G_APPLICATION(app_));
            },
            aio::Scale::ms, "monitor-watchdog");
        st_watchdog_.arm_after(15'000);
    }
}

Monitor::~Monitor()
{
    sample_timer_.reset();
    st_shot_.reset();
    st_watchdog_.reset();
    ring_.reset();  // parks the token, joins every IOThread
}

void Monitor::restart(int n)
{
    ring_.reset();
    ring_ = std::make_unique<Ring>(n, polling_);
    prev_.assign(static_cast<std::size_t>(n), Prev{});
    ++restarts_;
    for (int r = 0; r < kMaxThreads; ++r) {
        for (int c = 0; c < kColumns; ++c) {
            gtk_widget_set_visible(cells_[r][c], r < n);
        }
    }
}

void Monitor::sample()
{
    const std::int64_t now = now_us();
    const double dt = std::max(1e-3, (now - prev_us_) / 1e6);
    prev_us_ = now;
    Sample s;
    s.t = (now - t0_us_) / 1e6;
    s.polling = polling_;
    for (int i = 0; i < ring_->size(); ++i) {
        Ring::Slot& sl = ring_->slot(i);
        Prev& p = prev_[static_cast<std::size_t>(i)];
        ThreadSample ts;
        const std::uint64_t hops = sl.hops.load(std::memory_order_relaxed);
        const std::uint64_t hop_ns = sl.hop_ns.load(std::memory_order_relaxed);
        const std::uint64_t laps = sl.laps.load(std::memory_order_relaxed);
        const std::uint64_t lap_ns = sl.lap_ns.load(std::memory_order_relaxed);
        ts.hops_s = static_cast<double>(hops - p.hops) / dt;
        auto mean_us = [](std::uint64_t sum_ns, std::uint64_t count) {
            return static_cast<double>(sum_ns) / static_cast<double>(count) / 1e3;
        };
        if (hops > p.hops) {
            ts.hop_us = mean_us(hop_ns - p.hop_ns, hops - p.hops);
        }
        if (laps > p.laps) {
            ts.rtt_us = mean_us(lap_ns - p.lap_ns, laps - p.laps);
        }
        const aio::ContextStats st = sl.thread->context().stats();
        ts.poll_hits_s = static_cast<double>(st.busy_poll_hits - p.poll_hits) / dt;
        ts.eventfd_s = static_cast<double>(st.eventfd_writes - p.eventfd) / dt;
        ts.asleep = std::min(100.0, static_cast<double>(st.sleep_ns - p.sleep_ns) / 1e9 / dt * 100);
        const int tid = sl.tid.load(std::memory_order_relaxed);
        if (tid != 0) {
            ts.cpu = p.cpu.update(cpu_ticks(tid), now);
            st_cpu_seen_ = st_cpu_seen_ || !std::isnan(ts.cpu);
        }
        p.hops = hops;
        p.hop_ns = hop_ns;
        p.laps = laps;
        p.lap_ns = lap_ns;
        p.poll_hits = st.busy_poll_hits;
        p.eventfd = st.eventfd_writes;
        p.sleep_ns = st.sleep_ns;
        s.th.push_back(ts);
    }
    const double proc_cpu = proc_cpu_.update(cpu_ticks(0), now);

    double total_hops = 0;
    for (const ThreadSample& ts : s.th) {
        total_hops += ts.hops_s;
    }
    char text[256];
    std::snprintf(text, sizeof text,
                  "%d IOThreads, one token, %s hops/s in all  \u00b7  process CPU %.0f %%  "
                  "\u00b7  adaptive busy polling %s  \u00b7  ring (re)started %d\u00d7",
                  ring_->size(),
                  demo::group_digits(static_cast<unsigned long long>(total_hops)).c_str(),
                  std::isnan(proc_cpu) ? 0.0 : proc_cpu, polling_ ? "on (32 \u00b5s)" : "off",
                  restarts_);
    gtk_label_set_text(GTK_LABEL(summary_), text);
    update_table(s);

    history_.push_back(std::move(s));
    while (!history_.empty() && history_.front().t < history_.back().t - kHistorySeconds - 1) {
        history_.pop_front();
    }
    gtk_widget_queue_draw(plot_);
    if (opts_ != nullptr) {
        self_test_step(history_.back().t);
    }
}

std::string fmt_us(double us)
{
    char b[32];
    if (std::isnan(us)) {
        return "\u2013";
    }
    if (us >= 1000) {
        std::snprintf(b, sizeof b, "%.2f ms", us / 1000);
    } else {
        std::snprintf(b, sizeof b, "%.1f \u00b5s", us);
    }
    return b;
}

// Axis labels: "1 µs", "100 µs", "10 ms"; "20k".
std::string fmt_axis_us(double us)
{
    char b[32];
    if (us >= 1000) {
        std::snprintf(b, sizeof b, "%g ms", us / 1000);
    } else {
        std::snprintf(b, sizeof b, "%g \u00b5s", us);
    }
    return b;
}

std::string fmt_axis(double v)
{
    char b[32];
    if (v >= 1000) {
        std::snprintf(b, sizeof b, "%gk", v / 1000);
    } else {
        std::snprintf(b, sizeof b, "%g", v);
    }
    return b;
}

std::string fmt_num(double v, const char* unit = "")
{
    if (std::isnan(v)) {
        return "\u2013";
    }
    return demo::group_digits(static_cast<unsigned long long>(std::lround(std::max(v, 0.0)))) +
           unit;
}

void Monitor::update_table(const Sample& s)
{
    for (std::size_t i = 0; i < s.th.size(); ++i) {
        const ThreadSample& ts = s.th[i];
        const Rgb c = kColours[i];
        char name[160];
        std::snprintf(name, sizeof name,
                      "<span foreground=\"#%02x%02x%02x\">\u25a0</span> IO ring%zu",
                      static_cast<int>(c.r * 255), static_cast<int>(c.g * 255),
                      static_cast<int>(c.b * 255), i);
        gtk_label_set_markup(GTK_LABEL(cells_[i][kName]), name);
        gtk_label_set_text(GTK_LABEL(cells_[i][kHops]), fmt_num(ts.hops_s).c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kRtt]), fmt_us(ts.rtt_us).c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kHop]), fmt_us(ts.hop_us).c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kCpu]), fmt_num(ts.cpu, " %").c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kPollHits]), fmt_num(ts.poll_hits_s).c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kEventfd]), fmt_num(ts.eventfd_s).c_str());
        gtk_label_set_text(GTK_LABEL(cells_[i][kAsleep]), fmt_num(ts.asleep, " %").c_str());
    }
}

// --- the plot -----------------------------------------------------------------------------

void Monitor::draw_text(cairo_t* cr, double x, double y, const std::string& text, double align,
                        bool bold)
{
    PangoLayout* layout = gtk_widget_create_pango_layout(plot_, nullptr);
    if (bold) {
        gchar* m = g_markup_printf_escaped("<b>%s</b>", text.c_str());
        pango_layout_set_markup(layout, m, -1);
        g_free(m);
    } else {
        pango_layout_set_text(layout, text.c_str(), -1);
    }
    PangoFontDescription* fd = pango_font_description_from_string("Sans 8.5");
    pango_layout_set_font_description(layout, fd);
    pango_font_description_free(fd);
    int tw = 0;
    int th = 0;
    pango_layout_get_pixel_size(layout, &tw, &th);
    cairo_move_to(cr, x - align * tw, y - th / 2.0);
    pango_cairo_show_layout(cr, layout);
    g_object_unref(layout);
}

// Tick step of about `span / 5` on a 1-2-5 scale.
double nice_step(double span)
{
    const double raw = span / 5;
    const double mag = std::pow(10, std::floor(std::log10(raw)));
    const double f = raw / mag;
    return mag * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

void Monitor::on_draw(GtkDrawingArea*, cairo_t* cr, int w, int h, gpointer self)
{
    static_cast<Monitor*>(self)->draw(cr, w, h);
}

void Monitor::draw(cairo_t* cr, int w, int h)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (history_.size() < 2) {
        cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
        draw_text(cr, w / 2.0, h / 2.0, "sampling\u2026", 0.5);
        return;
    }
    const double left = 70;
    const double right = w - 16.0;
    const double t1 = history_.back().t;
    const double t0 = std::max(history_.front().t, t1 - kHistorySeconds);
    const double span = std::max(t1 - t0, 1.0);
    auto xof = [&](double t) { return left + (t - (t1 - span)) / span * (right - left); };

    struct Panel {
        const char* title;
        bool log;
        double (*get)(const ThreadSample&);
        bool dashed_hops;  // also draw wake-up latency, dashed
        bool coincide;     // the threads' lines lie on top of each other
    };
    const Panel panels[] = {
        {"Latency (log scale): round trip of the token, solid \u00b7 wake-up of each thread, "
         "dashed",
         true, [](const ThreadSample& s) { return s.rtt_us; }, true, true},
        {"Hops per second, per IOThread (one token: every thread makes as many hops)", false,
         [](const ThreadSample& s) { return s.hops_s; }, false, true},
        {"CPU % per IOThread (/proc/self/task/*/stat)", false,
         [](const ThreadSample& s) { return s.cpu; }, false, false},
    };
    const double title_h = 20;
    const double gap = 10;
    const double axis_h = 18;
    const double panel_h = (h - axis_h - 3 * (title_h + gap)) / 3;

    for (int pi = 0; pi < 3; ++pi) {
        const Panel& P = panels[pi];
        const double top = gap + pi * (panel_h + title_h + gap) + title_h;
        const double bottom = top + panel_h;

        // Range over the visible samples.
        double lo = std::numeric_limits<double>::infinity();
        double hi = -lo;
        for (const Sample& s : history_) {
            if (s.t < t1 - span) {
                continue;
            }
            for (const ThreadSample& ts : s.th) {
                for (double v : {P.get(ts), P.dashed_hops ? ts.hop_us : kNaN}) {
                    if (!std::isnan(v) && (!P.log || v > 0)) {
                        lo = std::min(lo, v);
                        hi = std::max(hi, v);
                    }
                }
            }
        }
        double ymin = 0;
        double ymax = 1;
        if (P.log) {
            ymin = std::isfinite(lo) ? std::floor(std::log10(lo)) : 0;
            ymax = std::isfinite(hi) ? std::ceil(std::log10(hi)) : 3;
            if (ymax - ymin < 2) {
                ymax = ymin + 2;
            }
        } else {
            ymax = std::isfinite(hi) ? hi * 1.15 : 1;
            if (pi == 2) {
                ymax = std::max(ymax, 100.0);
            }
            ymax = std::max(ymax, 1.0);
        }
        auto yof = [&](double v) {
            const double f = P.log ? (std::log10(v) - ymin) / (ymax - ymin) : v / ymax;
            return bottom - f * (bottom - top);
        };

        // Where busy polling was on: shaded bands.
        cairo_set_source_rgba(cr, 1.0, 0.80, 0.20, 0.22);
        for (auto it = history_.begin(); it != history_.end(); ++it) {
            if (!it->polling || std::next(it) == history_.end()) {
                continue;
            }
            const double xa = std::max(left, xof(it->t));
            const double xb = xof(std::next(it)->t);
            if (xb > left) {
                cairo_rectangle(cr, xa, top, xb - xa + 0.5, bottom - top);
            }
        }
        cairo_fill(cr);

        // Frame, grid, labels.
        cairo_set_line_width(cr, 1);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        if (P.log) {
            for (int d = static_cast<int>(ymin); d <= static_cast<int>(ymax); ++d) {
                const double y = std::round(yof(std::pow(10, d))) + 0.5;
                cairo_move_to(cr, left, y);
                cairo_line_to(cr, right, y);
            }
        } else {
            const double step = nice_step(ymax);
            for (double v = 0; v <= ymax + 1e-9; v += step) {
                const double y = std::round(yof(v)) + 0.5;
                cairo_move_to(cr, left, y);
                cairo_line_to(cr, right, y);
            }
        }
        const double tstep = nice_step(span);
        for (double t = std::ceil((t1 - span) / tstep) * tstep; t <= t1 + 1e-9; t += tstep) {
            const double x = std::round(xof(t)) + 0.5;
            cairo_move_to(cr, x, top);
            cairo_line_to(cr, x, bottom);
        }
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        if (P.log) {
            for (int d = static_cast<int>(ymin); d <= static_cast<int>(ymax); ++d) {
                draw_text(cr, left - 6, yof(std::pow(10, d)), fmt_axis_us(std::pow(10, d)), 1);
            }
        } else {
            const double step = nice_step(ymax);
            for (double v = 0; v <= ymax + 1e-9; v += step) {
                draw_text(cr, left - 6, yof(v), fmt_axis(v), 1);
            }
        }
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        draw_text(cr, left, top - title_h / 2, P.title, 0, true);
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        cairo_rectangle(cr, left + 0.5, top + 0.5, right - left - 1, bottom - top - 1);
        cairo_stroke(cr);

        // One line per thread; a gap wherever a value is missing.
        cairo_save(cr);
        cairo_rectangle(cr, left, top, right - left, bottom - top);
        cairo_clip(cr);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        int threads_drawn = 1;
        for (const Sample& s : history_) {
            threads_drawn = std::max(threads_drawn, static_cast<int>(s.th.size()));
        }
        for (int pass = 0; pass < (P.dashed_hops ? 2 : 1); ++pass) {
            for (int k = 0; k < threads_drawn; ++k) {
                bool pen_down = false;
                bool any = false;
                for (const Sample& s : history_) {
                    double v = kNaN;
                    if (static_cast<std::size_t>(k) < s.th.size()) {
                        v = pass == 0 ? P.get(s.th[static_cast<std::size_t>(k)])
                                      : s.th[static_cast<std::size_t>(k)].hop_us;
                    }
                    if (std::isnan(v) || (P.log && v <= 0)) {
                        pen_down = false;
                        continue;
                    }
                    const double x = xof(s.t);
                    const double y = yof(v);
                    if (pen_down) {
                        cairo_line_to(cr, x, y);
                    } else {
                        cairo_move_to(cr, x, y);
                    }
                    pen_down = true;
                    any = true;
                }
                if (!any) {
                    continue;
                }
                const Rgb& c = kColours[static_cast<std::size_t>(k)];
                cairo_set_source_rgb(cr, c.r, c.g, c.b);
                if (pass == 1) {
                    const double dash[] = {5, 3};
                    cairo_set_dash(cr, dash, 2, 0);
                    cairo_set_line_width(cr, 1.5);
                } else {
                    // With one token every thread makes the same number of hops, so the
                    // lines coincide: earlier threads are drawn wider, underneath, so each
                    // colour still shows as a stripe.
                    cairo_set_dash(cr, nullptr, 0, 0);
                    cairo_set_line_width(cr, P.coincide ? 1.8 + 1.6 * (threads_drawn - 1 - k)
                                                        : 2.0);
                }
                cairo_stroke(cr);
            }
        }
        cairo_restore(cr);
    }

    // Time axis under the last panel, and a label on every polling band.
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    const double axis_y = h - axis_h / 2;
    const double tstep = nice_step(span);
    for (double t = std::ceil((t1 - span) / tstep) * tstep; t <= t1 + 1e-9; t += tstep) {
        char b[32];
        std::snprintf(b, sizeof b, tstep < 1 ? "%.1f s" : "%.0f s", t);
        draw_text(cr, xof(t), axis_y, b, 0.5);
    }
    const double first_top = gap + title_h;
    for (auto it = history_.begin(); it != history_.end(); ++it) {
        const bool starts = it->polling && (it == history_.begin() || !std::prev(it)->polling);
        if (!starts || xof(it->t) < left - 1 || xof(it->t) > right - 110) {
            continue;
        }
        cairo_set_source_rgb(cr, 0.55, 0.40, 0.0);
        draw_text(cr, xof(it->t) + 6, first_top + 10, "busy polling on", 0);
    }
}

// --- signals ------------------------------------------------------------------------------

void Monitor::on_threads_changed(GtkSpinButton* spin, gpointer self)
{
    auto* m = static_cast<Monitor*>(self);
    const int n = gtk_spin_button_get_value_as_int(spin);
    if (n != m->ring_->size()) {
        m->restart(n);
    }
}

void Monitor::on_polling_changed(GObject* sw, GParamSpec*, gpointer self)
{
    auto* m = static_cast<Monitor*>(self);
    m->polling_ = gtk_switch_get_active(GTK_SWITCH(sw));
    m->ring_->set_polling(m->polling_);
}

void Monitor::on_destroy(GtkWidget*, gpointer self)
{
    delete static_cast<Monitor*>(self);
}

// --- self-test ----------------------------------------------------------------------------
// Start with 2 IOThreads, go to 3 (a restart: park, join, recreate), run 2 s with busy
// polling on and 2 s with it off; every thread must make at least 1000 hops in each phase.

Monitor::Phase Monitor::counters()
{
    Phase p;
    for (int i = 0; i < ring_->size(); ++i) {
        Ring::Slot& s = ring_->slot(i);
        p.hops.push_back(s.hops.load(std::memory_order_relaxed));
        p.hop_count += s.hops.load(std::memory_order_relaxed);
        p.hop_ns += s.hop_ns.load(std::memory_order_relaxed);
        p.laps += s.laps.load(std::memory_order_relaxed);
        p.lap_ns += s.lap_ns.load(std::memory_order_relaxed);
        const aio::ContextStats st = s.thread->context().stats();
        p.poll_hits += st.busy_poll_hits;
        p.eventfd += st.eventfd_writes;
    }
    p.proc_ticks = cpu_ticks(0);
    p.us = now_us();
    return p;
}

void Monitor::self_test_step(double t)
{
    auto diff = [](const Phase& end, const Phase& start) {
        Phase d;
        for (std::size_t i = 0; i < end.hops.size(); ++i) {
            d.hops.push_back(end.hops[i] - (i < start.hops.size() ? start.hops[i] : 0));
        }
        d.hop_count = end.hop_count - start.hop_count;
        d.hop_ns = end.hop_ns - start.hop_ns;
        d.laps = end.laps - start.laps;
        d.lap_ns = end.lap_ns - start.lap_ns;
        d.poll_hits = end.poll_hits - start.poll_hits;
        d.eventfd = end.eventfd - start.eventfd;
        d.proc_ticks = end.proc_ticks - start.proc_ticks;
        d.us = end.us - start.us;
        return d;
    };
    switch (st_state_) {
    case 0:
        if (t >= 0.6) {
            gtk_spin_button_set_value(GTK_SPIN_BUTTON(spin_), 3);  // restart with 3
            st_mark_ = counters();
            st_state_ = 1;
        }
        break;
    case 1:
        if (t >= 2.6) {
            st_on_ = diff(counters(), st_mark_);
            gtk_switch_set_active(GTK_SWITCH(switch_), FALSE);
            st_mark_ = counters();
            st_state_ = 2;
        }
        break;
    case 2:
        if (t >= 4.6) {
            st_off_ = diff(counters(), st_mark_);
            st_state_ = 3;
            // One more sample so the plot shows the end of the phase, then the picture.
            st_shot_ = aio::Timer(
                ctx_, aio::Clock::realtime, [this] { self_test_finish(); }, aio::Scale::ms,
                "monitor-screenshot");
            st_shot_.arm_after(kSampleMs + 50);
        }
        break;
    default:
        break;
    }
}

void Monitor::self_test_finish()
{
    bool ok = true;
    auto check = [&ok](bool cond, const std::string& what) {
        g_print("monitor: %s: %s\n", cond ? "ok  " : "FAIL", what.c_str());
        ok = ok && cond;
    };
    static const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    auto mean_us = [](std::uint64_t sum_ns, std::uint64_t count) {
        return count != 0 ? static_cast<double>(sum_ns) / static_cast<double>(count) / 1e3 : 0.0;
    };
    for (const auto& [name, p] : {std::pair{"on ", &st_on_}, std::pair{"off", &st_off_}}) {
        const double secs = p->us / 1e6;
        std::string hops;
        for (std::uint64_t h : p->hops) {
            hops += (hops.empty() ? "" : " / ") + std::to_string(h);
        }
        g_print("monitor: busy polling %s: %.1f s, hops per thread %s, %.0f hops/s, round trip "
                "%.1f us, wake-up %.1f us, busy-poll hits %llu, eventfd wake-ups %llu, "
                "process CPU %.0f %%\n",
                name, secs, hops.c_str(), static_cast<double>(p->hop_count) / secs,
                mean_us(p->lap_ns, p->laps), mean_us(p->hop_ns, p->hop_count),
                static_cast<unsigned long long>(p->poll_hits),
                static_cast<unsigned long long>(p->eventfd),
                100.0 * static_cast<double>(p->proc_ticks) / hz / secs);
        bool enough = p->hops.size() == 3;
        for (std::uint64_t h : p->hops) {
            enough = enough && h >= 1000;
        }
        check(enough, std::string("3 IOThreads, at least 1000 hops each with busy polling ") +
                          name);
    }
    check(st_cpu_seen_, "per-thread CPU % read from /proc/self/task");
    check(history_.size() >= 20, "the 100 ms sampler ran (" +
                                     std::to_string(history_.size()) + " samples)");
    if (opts_->screenshot.empty()) {
        opts_->exit_code = ok ? 0 : 1;
        g_application_quit(G_APPLICATION(app_));
        return;
    }
    demo::save_png_after_paint(window_, opts_->screenshot, [this, ok](bool saved) {
        g_print("monitor: %s: screenshot saved to %s\n", saved ? "ok  " : "FAIL",
                opts_->screenshot.c_str());
        opts_->exit_code = ok && saved ? 0 : 1;
        g_application_quit(G_APPLICATION(app_));
    });
}

}  // namespace

GtkWidget* open_window(GtkApplication* app, demo::Options* opts)
{
    auto* m = new Monitor(app, opts);  // owned by its window: deleted on "destroy"
    gtk_window_present(GTK_WINDOW(m->window()));
    return m->window();
}

}  // namespace monitor
