/* Registry payloads from arbitrary bytes: an instance's JSON (as found in a
 * local registry file or an etcd value), and the etcd gateway's answers
 * (lease grant/keepalive, range, watch stream chunks). Whatever instance
 * parses must serialize and parse back to the same instance; base64 must
 * round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const msvc_registry_instance_t *inst, uint32_t ttl,
                      uint64_t beat) {
  msvc_registry_instance_t again;
  uint32_t ttl2 = 0;
  uint64_t beat2 = 0;
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  if (msvc__reg_instance_to_json(inst, ttl, beat, &b) != MSVC_OK) {
    msvc__buf_free(&b);
    return;
  }
  if (msvc__reg_instance_from_json(b.data, b.len, &again, &ttl2, &beat2) !=
          MSVC_OK ||
      !msvc__reg_instance_equal(inst, &again) || ttl2 != ttl ||
      (ttl != 0 && beat2 != beat))
    abort(); /* a fuzzing oracle, not library code */
  msvc__reg_instance_clear(&again);
  msvc__buf_free(&b);
}

/* The etcd parsers: none may crash on any input. */
static void etcd_answers(const char *p, size_t size) {
  msvc_registry_set_t *set = NULL;
  msvc__etcd_watch_msg_t m;
  int64_t id, ttl, rev;
  size_t off = 0, start, end;
  msvc__buf_t b, back;

  msvc__etcd_parse_lease(p, size, &id, &ttl);
  if (msvc__etcd_parse_range(p, size, "svc", &set, &rev) == MSVC_OK)
    msvc_registry_set_unref(set);
  /* The input as a watch stream, split wherever the objects end. */
  while (off < size &&
         (end = msvc__etcd_next_object(p + off, size - off, &start)) != 0 &&
         end != (size_t)-1) {
    msvc__etcd_parse_watch_msg(p + off + start, end - start, &m);
    off += end;
  }
  msvc__buf_init(&b, 0);
  msvc__buf_init(&back, 0);
  msvc__etcd_b64_encode(&b, p, size);
  msvc__buf_putc(&b, '\0');
  if (b.err == 0 && (msvc__etcd_b64_decode(b.data, &back) != MSVC_OK ||
                     back.len != size || (size && memcmp(back.data, p, size))))
    abort(); /* a fuzzing oracle, not library code */
  msvc__buf_free(&b);
  msvc__buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_registry_instance_t inst;
  msvc_registry_set_t *set;
  uint32_t ttl = 0;
  uint64_t beat = 0;

  etcd_answers((const char *)data, size);
  if (msvc__reg_instance_from_json((const char *)data, size, &inst, &ttl,
                                   &beat) != MSVC_OK)
    return 0;
  if (msvc__reg_instance_validate(&inst) != MSVC_OK)
    abort();
  roundtrip(&inst, ttl, beat);
  /* Sets take ownership and must free everything they hold. */
  set = msvc__reg_set_new(inst.service);
  if (set != NULL && msvc__reg_set_add(set, &inst) == MSVC_OK)
    msvc__reg_set_finish(set);
  else
    msvc__reg_instance_clear(&inst);
  msvc_registry_set_unref(set);
  return 0;
}
