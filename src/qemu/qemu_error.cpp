// SPDX-License-Identifier: LGPL-2.1-or-later
// qapi/error.h: the Error object and the error_abort/error_fatal conventions.
#include "shim.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

struct Error {
    char* msg;
    const char* src;
    const char* func;
    int line;
};

Error* error_abort = nullptr;
Error* error_fatal = nullptr;

namespace {

void print_message(const char* msg) noexcept
{
    const char* prg = g_get_prgname();
    if (prg != nullptr) {
        std::fprintf(stderr, "%s: %s\n", prg, msg);
    } else {
        std::fprintf(stderr, "%s\n", msg);
    }
}

// Stores err in *errp, or applies the error_abort/error_fatal sentinels.
void handle_error(Error** errp, Error* err) noexcept
{
    if (errp == &error_abort) {
        std::fprintf(stderr, "Unexpected error in %s() at %s:%d:\n", err->func, err->src,
                     err->line);
        print_message(err->msg);
        std::abort();
    }
    if (errp == &error_fatal) {
        print_message(err->msg);
        std::exit(1);
    }
    if (errp == nullptr) {
        error_free(err);
        return;
    }
    if (*errp != nullptr) {
        // As in QEMU: an Error ** must point at NULL; overwriting an error loses it.
        aio::qemu::fatal(err->func, "error '%s' set over an unhandled error '%s'",
                         err->msg, (*errp)->msg);
    }
    *errp = err;
}

void error_setv(Error** errp, const char* src, int line, const char* func,
                const char* fmt, va_list ap) noexcept
{
    if (errp == nullptr) {
        return;
    }
    auto* err = g_new0(Error, 1);
    err->msg = g_strdup_vprintf(fmt, ap);
    err->src = src != nullptr ? src : "?";
    err->func = func != nullptr ? func : "?";
    err->line = line;
    handle_error(errp, err);
}

}  // namespace

const char* error_get_pretty(const Error* err) { return err->msg; }

void error_free(Error* err)
{
    if (err != nullptr) {
        g_free(err->msg);
        g_free(err);
    }
}

void error_free_or_abort(Error** errp)
{
    if (errp == nullptr || *errp == nullptr) {
        aio::qemu::fatal("error_free_or_abort", "no error was set");
    }
    error_free(*errp);
    *errp = nullptr;
}

void error_report_err(Error* err)
{
    print_message(err->msg);
    error_free(err);
}

void error_propagate(Error** dst_errp, Error* local_err)
{
    if (local_err == nullptr) {
        return;
    }
    if (dst_errp == nullptr) {
        error_free(local_err);
        return;
    }
    if (dst_errp != &error_abort && dst_errp != &error_fatal && *dst_errp != nullptr) {
        error_free(local_err);  // the first error wins, as in QEMU
        return;
    }
    handle_error(dst_errp, local_err);
}

void error_setg_internal(Error** errp, const char* src, int line, const char* func,
                         const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, src, line, func, fmt, ap);
    va_end(ap);
}

namespace aio::qemu {

void fatal(const char* func, const char* fmt, ...) noexcept
{
    std::fprintf(stderr, "%s: ", func);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::abort();
}

void fatal_exception(const char* func) noexcept
{
    try {
        throw;
    } catch (const std::exception& e) {
        fatal(func, "%s", e.what());
    } catch (...) {
        fatal(func, "unexpected exception");
    }
}

}  // namespace aio::qemu
