// SPDX-License-Identifier: LGPL-2.1-or-later
// Symbol visibility: the library is built with -fvisibility=hidden; only declarations
// marked AIO_EXPORT form the ABI.
#pragma once

#if defined(AIO_BUILDING_LIBRARY)
#define AIO_EXPORT __attribute__((visibility("default")))
#else
#define AIO_EXPORT
#endif
