/* A request whose sender made some of its headers itself: the client
 * leaves those out of its checks. Kept apart from the client's other
 * internals so that the service block can use it without llhttp's
 * headers. */
#ifndef MSVC_HTTP_CLIENT_OWN_H
#define MSVC_HTTP_CLIENT_OWN_H

#include <msvc/http_client.h>

/* msvc_http_client_request(), with r->headers[own_from .. own_from + own_n)
 * taken as valid without a look: names that are tokens and values with no
 * control character, which the sender guarantees (a request id it made or
 * checked, a traceparent it formatted). The other headers are checked. */
int msvc__http_client_request_own(msvc_http_client_t *c, const msvc_http_request_t *r,
                                  size_t own_from, size_t own_n, msvc_http_call_t **out);

/* msvc_retry_note_request() for a sender that has just read the monotonic
 * clock (msvc_now_ms()'s) as now_ms: a policy on the default clock counts
 * the request at that time instead of reading the clock again; one with a
 * clock of its own reads that clock as before. */
void msvc__retry_note_request_at(msvc_retry_t *r, uint64_t now_ms);

#endif /* MSVC_HTTP_CLIENT_OWN_H */
