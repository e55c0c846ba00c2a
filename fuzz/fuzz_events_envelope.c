/* CloudEvents envelopes from arbitrary bytes, as a consumer receives them
 * from the broker. Whatever parses must build again into an envelope that
 * parses to the same event (id, source, type, time, content type, data). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/events.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const char *a, const char *b) {
  if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
    abort(); /* a fuzzing oracle, not library code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_events_envelope_t *env = NULL, *again = NULL;
  const msvc_event_t *e, *e2;
  msvc_event_t copy;
  char *json = NULL;
  size_t len;

  if (msvc_events_envelope_parse((const char *)data, size, &env, NULL) != MSVC_OK)
    return 0;
  e = msvc_events_envelope_event(env);
  copy = *e;
  copy.subject = NULL;
  /* Empty optional attributes are written as their defaults by build. */
  if (copy.time[0] == '\0' || copy.datacontenttype[0] == '\0' ||
      msvc_events_envelope_build(&copy, &json, &len) != MSVC_OK) {
    msvc_events_envelope_free(env);
    return 0;
  }
  if (msvc_events_envelope_parse(json, len, &again, NULL) != MSVC_OK)
    abort();
  e2 = msvc_events_envelope_event(again);
  same(e->id, e2->id);
  same(e->source, e2->source);
  same(e->type, e2->type);
  same(e->time, e2->time);
  same(e->datacontenttype, e2->datacontenttype);
  same(e->data, e2->data);
  msvc_events_envelope_free(again);
  msvc_events_envelope_free(env);
  msvc_free(json);
  return 0;
}
