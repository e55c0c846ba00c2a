/*
 * Internal entry points of the concurrency limit, for the middleware and
 * for tests that drive the limit's microsecond clock.
 */
#ifndef MSVC_LIMIT_INTERNAL_H
#define MSVC_LIMIT_INTERNAL_H

#include <msvc/limit.h>

/* Limits below this honour their fraction: the start of each permit is
 * kept in one of as many slots (a permit's `slot` is its index + 1). */
#define MSVC__LIMIT_SLOTS 32

/* msvc_limit_adaptive_acquire() with the microsecond clock given (0: read
 * the monotonic clock when the limit needs it). */
int msvc__limit_adaptive_acquire_at(msvc_limit_adaptive_t *cl, uint64_t now_ms,
                                    uint64_t now_us, msvc_limit_permit_t *p);

#endif /* MSVC_LIMIT_INTERNAL_H */
