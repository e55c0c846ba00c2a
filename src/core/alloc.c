#include <stdlib.h>
#include <string.h>

#include "msvc-internal.h"

#ifdef MSVC_FAULT_INJECTION
/* Fault injection, compiled only into the test copy of the library (see
 * src/core/alloc-fault.h): a release build has none of this, not even a
 * branch. Atomics because a scenario may allocate from a worker thread. */
#include <execinfo.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/alloc-fault.h"

static atomic_ulong fault_countdown; /* 0: off; n: the n-th from now fails */
static atomic_ulong fault_allocs;
static atomic_bool fault_hit;
static atomic_bool fault_persist;
static atomic_ulong fault_run;      /* failures still due after the n-th */
static atomic_ulong fault_failures;

void msvc__fault_fail_nth(unsigned long n) {
  atomic_store(&fault_allocs, 0);
  atomic_store(&fault_failures, 0);
  atomic_store(&fault_hit, false);
  atomic_store(&fault_run, 0);
  atomic_store(&fault_countdown, n);
}

void msvc__fault_fail_run(unsigned long n, unsigned long count) {
  msvc__fault_fail_nth(n);
  atomic_store(&fault_run, count > 0 ? count - 1 : 0);
}

unsigned long msvc__fault_failures(void) {
  return atomic_load(&fault_failures);
}

void msvc__fault_persist(bool on) {
  atomic_store(&fault_persist, on);
}

unsigned long msvc__fault_allocs(void) {
  return atomic_load(&fault_allocs);
}

bool msvc__fault_hit(void) {
  return atomic_load(&fault_hit);
}

static bool failing(void) {
  atomic_fetch_add(&fault_failures, 1);
  return true;
}

/* After the armed failure: fail on while persistent or while the run lasts. */
static bool fault_after_hit(void) {
  unsigned long run = atomic_load(&fault_run);

  if (atomic_load(&fault_persist))
    return failing();
  while (run != 0)
    if (atomic_compare_exchange_weak(&fault_run, &run, run - 1))
      return failing();
  return false;
}

static bool fault_now(void) {
  unsigned long left = atomic_load(&fault_countdown);

  atomic_fetch_add(&fault_allocs, 1);
  if (left == 0)
    return atomic_load(&fault_hit) && fault_after_hit();
  while (left != 0) {
    if (atomic_compare_exchange_weak(&fault_countdown, &left, left - 1)) {
      if (left != 1)
        return false;
      atomic_store(&fault_hit, true);
      if (getenv("MSVC_FAULT_BACKTRACE") != NULL) {
        void *frames[16];

        backtrace_symbols_fd(frames, backtrace(frames, 16), STDERR_FILENO);
      }
      return failing();
    }
  }
  return false;
}
#define FAULT_NOW() fault_now()
#else
#define FAULT_NOW() false
#endif

void *msvc__malloc(size_t size) {
  if (FAULT_NOW())
    return NULL;
  return malloc(size == 0 ? 1 : size);
}

void *msvc__calloc(size_t count, size_t size) {
  if (FAULT_NOW())
    return NULL;
  if (count == 0 || size == 0)
    return calloc(1, 1);
  return calloc(count, size);
}

void *msvc__realloc(void *ptr, size_t size) {
  if (FAULT_NOW())
    return NULL;
  return realloc(ptr, size == 0 ? 1 : size);
}

void msvc__free(void *ptr) {
  free(ptr);
}

void msvc_free(void *ptr) {
  msvc__free(ptr);
}

char *msvc__strndup(const char *s, size_t n) {
  char *copy = msvc__malloc(n + 1);

  if (copy == NULL)
    return NULL;
  memcpy(copy, s, n);
  copy[n] = '\0';
  return copy;
}

char *msvc__strdup(const char *s) {
  return msvc__strndup(s, strlen(s));
}
