/*
 * Allocation fault injection for the out-of-memory tests. These functions
 * exist only in the test copy of the library, whose src/core/alloc.c is
 * compiled with MSVC_FAULT_INJECTION (tests/CMakeLists.txt); the shared
 * and static libraries that get installed have neither the functions nor a
 * check in the allocation path. Never installed; not API.
 */
#ifndef MSVC_ALLOC_FAULT_H
#define MSVC_ALLOC_FAULT_H

#include <stdbool.h>

/* Makes the n-th allocation from now (msvc__malloc, msvc__calloc,
 * msvc__realloc, and so msvc__strdup) fail once, returning NULL; 0 turns
 * injection off. Also resets the allocation count and the hit flag. With
 * MSVC_FAULT_BACKTRACE set in the environment, the failing allocation
 * prints a backtrace to stderr. */
void msvc__fault_fail_nth(unsigned long n);

/* Like msvc__fault_fail_nth(n), and the count - 1 allocations right after
 * the n-th fail too: a run of count failures in a row, then success. */
void msvc__fault_fail_run(unsigned long n, unsigned long count);

/* With on, the armed failure is not the last: every allocation after it
 * fails too, until msvc__fault_fail_nth() is called again. */
void msvc__fault_persist(bool on);

/* Allocations attempted since the last msvc__fault_fail_nth(), the failed
 * one included. */
unsigned long msvc__fault_allocs(void);

/* Allocations made to fail since the last msvc__fault_fail_nth(). */
unsigned long msvc__fault_failures(void);

/* Whether the armed failure has happened since the last
 * msvc__fault_fail_nth(). */
bool msvc__fault_hit(void);

#endif
