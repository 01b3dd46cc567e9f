/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qapi/error.h: the minimal Error type the AioContext APIs use (QEMU 7.2 names).
 *
 * Functions that can fail take `Error **errp` last. Pass NULL to ignore the error,
 * &error_abort to abort with the message on failure, &error_fatal to print it and
 * exit(1), or the address of an `Error *` initialised to NULL to receive it (then
 * error_get_pretty()/error_report_err()/error_free() it).
 */
#ifndef AIOCONTEXT_QEMU_QAPI_ERROR_H
#define AIOCONTEXT_QEMU_QAPI_ERROR_H

#include "qemu/osdep.h"
#include "qemu/typedefs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sentinels: their addresses select abort()/exit(1) on error. Never dereferenced. */
extern Error *error_abort;
extern Error *error_fatal;

/* The error's message. */
const char *error_get_pretty(const Error *err);

/* Frees err (NULL is fine). */
void error_free(Error *err);

/* Asserts that *errp holds an error and frees it (test helper, as in QEMU). */
void error_free_or_abort(Error **errp);

/* Prints err's message on stderr and frees it. */
void error_report_err(Error *err);

/* Moves local_err into *dst_errp (applying error_abort/error_fatal); frees it if
 * dst_errp is NULL or already holds an error. */
void error_propagate(Error **dst_errp, Error *local_err);

/* Creates an error with a printf-style message and stores it in *errp (see above).
 * *errp must be NULL. Use the error_setg() macro. */
void error_setg_internal(Error **errp, const char *src, int line, const char *func,
                         const char *fmt, ...) G_GNUC_PRINTF(5, 6);

#define error_setg(errp, ...) \
    error_setg_internal((errp), __FILE__, __LINE__, __func__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_QAPI_ERROR_H */
