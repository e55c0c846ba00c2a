/*
 * Read-only views of an events handle, for the admin pages.
 */
#include <msvc/error.h>

#include "events-internal.h"

int msvc_events_subs(const msvc_events_t *ev,
                     int (*cb)(const msvc_events_sub_info_t *info, void *data),
                     void *data) {
  const msvc__queue_t *q;

  if (ev == NULL || cb == NULL) return MSVC_EINVAL;
  msvc__queue_foreach(q, &ev->subs) {
    const msvc_events_sub_t *sub = msvc__container_of(q, msvc_events_sub_t, node);
    msvc_events_sub_info_t info;

    info.stream = sub->stream != NULL ? sub->stream : "";
    info.subject = sub->subject != NULL ? sub->subject : "";
    info.durable = sub->durable != NULL ? sub->durable : "";
    info.unacked = atomic_load(&((msvc_events_sub_t *)sub)->unacked);
    info.lag = sub->lag;
    info.closing = sub->closing;
    if (cb(&info, data) != 0) break;
  }
  return MSVC_OK;
}

size_t msvc_events_pending_publishes(const msvc_events_t *ev) {
  return ev == NULL ? 0 : ev->pending_pubs;
}
