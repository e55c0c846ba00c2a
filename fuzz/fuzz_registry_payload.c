/* Registry payloads from arbitrary bytes: an instance's JSON (as found in a
 * local registry file or, later, an etcd value). Whatever parses must
 * serialize and parse back to the same instance. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_registry_instance_t inst;
  msvc_registry_set_t *set;
  uint32_t ttl = 0;
  uint64_t beat = 0;

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
