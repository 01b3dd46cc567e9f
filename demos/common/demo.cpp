// SPDX-License-Identifier: LGPL-2.1-or-later
#include "demo.hpp"

#include <cstring>

namespace demo {

namespace {

aio::ContextPtr g_main_ctx;  // GTK thread only

gint on_handle_local_options(GApplication*, GVariantDict* dict, gpointer data)
{
    auto* opts = static_cast<Options*>(data);
    opts->self_test = g_variant_dict_contains(dict, "self-test");
    const char* path = nullptr;
    if (g_variant_dict_lookup(dict, "screenshot", "^&ay", &path)) {
        opts->screenshot = path;
    }
    return -1;  // carry on with the default handling (register, activate)
}

}  // namespace

bool wants_self_test(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--self-test") == 0) {
            return true;
        }
    }
    return false;
}

void add_options(GApplication* app, Options& opts)
{
    static const GOptionEntry entries[] = {
        {"self-test", 0, 0, G_OPTION_ARG_NONE, nullptr,
         "Run a scripted scenario, save a screenshot, exit 0 only if its checks held",
         nullptr},
        {"screenshot", 0, 0, G_OPTION_ARG_FILENAME, nullptr,
         "With --self-test: save the window as a PNG here", "PATH"},
        {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
    };
    g_application_add_main_option_entries(app, entries);
    g_signal_connect(app, "handle-local-options", G_CALLBACK(on_handle_local_options), &opts);
}

aio::Context& main_context()
{
    g_assert(g_main_ctx);
    return *g_main_ctx;
}

void create_main_context()
{
    g_main_ctx = aio::Context::create("main");
    // From here on GTK's main loop drives the context: its bottom halves, timers and pool
    // completions run in the GTK thread, between GTK's own event and paint sources.
    g_main_ctx->attach(g_main_context_default());
}

void destroy_main_context()
{
    if (g_main_ctx) {
        g_source_destroy(g_main_ctx->gsource());
        g_main_ctx.reset();
    }
}

bool save_png(GtkWidget* widget, const char* path)
{
    GtkNative* native = gtk_widget_get_native(widget);
    GskRenderer* renderer = native != nullptr ? gtk_native_get_renderer(native) : nullptr;
    if (renderer == nullptr) {
        g_printerr("screenshot: the window has no renderer (not realized?)\n");
        return false;
    }
    GdkPaintable* paintable = gtk_widget_paintable_new(widget);
    const int w = gtk_widget_get_width(widget);
    const int h = gtk_widget_get_height(widget);
    GtkSnapshot* snapshot = gtk_snapshot_new();
    gdk_paintable_snapshot(paintable, snapshot, w, h);
    GskRenderNode* node = gtk_snapshot_free_to_node(snapshot);
    bool ok = false;
    if (node != nullptr) {
        graphene_rect_t bounds;
        graphene_rect_init(&bounds, 0, 0, static_cast<float>(w), static_cast<float>(h));
        GdkTexture* texture = gsk_renderer_render_texture(renderer, node, &bounds);
        ok = gdk_texture_save_to_png(texture, path);
        g_object_unref(texture);
        gsk_render_node_unref(node);
    }
    g_object_unref(paintable);
    if (!ok) {
        g_printerr("screenshot: could not save %s\n", path);
    }
    return ok;
}

namespace {

struct PendingShot {
    GtkWidget* window;
    std::string path;
    std::function<void(bool)> done;
    gulong handler = 0;
};

void on_after_paint(GdkFrameClock* clock, gpointer data)
{
    auto* shot = static_cast<PendingShot*>(data);
    g_signal_handler_disconnect(clock, shot->handler);
    const bool ok = save_png(shot->window, shot->path.c_str());
    if (shot->done) {
        shot->done(ok);
    }
    g_object_unref(shot->window);
    delete shot;
}

}  // namespace

void save_png_after_paint(GtkWidget* window, std::string path, std::function<void(bool)> done)
{
    GdkFrameClock* clock = gtk_widget_get_frame_clock(window);
    if (clock == nullptr) {
        g_printerr("screenshot: the window is not realized\n");
        if (done) {
            done(false);
        }
        return;
    }
    auto* shot = new PendingShot{GTK_WIDGET(g_object_ref(window)), std::move(path),
                                 std::move(done)};
    shot->handler = g_signal_connect(clock, "after-paint", G_CALLBACK(on_after_paint), shot);
    gtk_widget_queue_draw(window);  // make sure there is a next frame
}

void destroy_windows(GtkApplication* app)
{
    GList* windows = g_list_copy(gtk_application_get_windows(app));
    for (GList* l = windows; l != nullptr; l = l->next) {
        gtk_window_destroy(GTK_WINDOW(l->data));
    }
    g_list_free(windows);
}

std::string group_digits(unsigned long long v)
{
    std::string s = std::to_string(v);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) {
        s.insert(static_cast<std::size_t>(i), "\u2009");  // thin space
    }
    return s;
}

}  // namespace demo
