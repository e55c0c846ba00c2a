/*
 * Cache-Control values as an upstream (or an attacker behind it) may send
 * them: the parser must never read outside the value, and an answer
 * carrying the value must go through the cache's store and lookup without
 * harm.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msvc/cache.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static msvc_cache_t *cache(void) {
  static msvc_cache_t *c;
  msvc_cache_opts_t o;

  if (c == NULL) {
    msvc_cache_opts_init(&o);
    o.max_bytes = 1 << 16;
    o.no_metrics = true;
    if (msvc_cache_new(&o, &c) != MSVC_OK)
      return NULL;
  }
  return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_cache_cc_t cc;
  msvc_cache_entry_t *e = NULL;
  msvc_cache_t *c = cache();
  char value[512];
  const char *names[3] = {"Cache-Control", "ETag", "Vary"};
  const char *values[3];
  msvc_cache_response_t r;
  size_t n = size < sizeof(value) - 1 ? size : sizeof(value) - 1;

  /* The raw bytes, not NUL-terminated. */
  msvc_cache_cc_parse((const char *)data, size, &cc);
  if (c == NULL)
    return 0;
  memcpy(value, data, n);
  value[n] = '\0';
  values[0] = value;
  values[1] = "\"e\"";
  values[2] = size > 0 && (data[0] & 1) ? "Authorization" : "";
  memset(&r, 0, sizeof(r));
  r.status = 200;
  r.names = names;
  r.values = values;
  r.nheaders = 3;
  r.body = value;
  r.body_len = n;
  msvc_cache_store(c, "k", size > 1 && (data[1] & 1) ? "Bearer x" : NULL, &r, size, &e);
  msvc_cache_entry_release(e);
  if (msvc_cache_lookup(c, "k", "Bearer x", size + 1000, &e) != MSVC_CACHE_ABSENT) {
    (void)msvc_cache_entry_stale_ok(e, size + 5000);
    msvc_cache_entry_release(e);
  }
  return 0;
}
