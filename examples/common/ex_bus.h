/*
 * The event side of an example service, on top of libmsvc's events block:
 * the stream it publishes into and the one it reads from, its outbox relay,
 * its durable subscription (one delivery per service, shared by its
 * instances) and a worker pool for the database work of both.
 */
#ifndef EX_BUS_H
#define EX_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include <msvc/events.h>
#include <msvc/service.h>
#include <msvc/work.h>

#include "ex_db.h"
#include "ex_outbox.h"

typedef struct ex_bus_s ex_bus_t;

typedef struct ex_bus_opts_s {
  const char *stream;        /* stream the service publishes into ("ORDERS") */
  const char *subjects;      /* its subjects ("order.>") */
  const char *peer_stream;   /* stream it consumes ("PAYMENTS") */
  const char *peer_subjects; /* its subjects ("payment.>") */
  const char *subject;       /* subject filter consumed ("payment.*") */
  const char *durable;       /* durable consumer: the service's name */
  /* Called for each event not processed lately (see the dedup window
   * below); settles it with ex_bus_processed() or msvc_events_nack()/_term(). */
  msvc_events_handler_fn handler;
  void *data;
  size_t dedup_capacity; /* event ids remembered (0: 10000) */
  uint64_t dedup_ttl_ms; /* for how long (0: 10 minutes) */
} ex_bus_opts_t;

/*
 * The bus owns the service's idempotent-consumer window: a delivery whose
 * event id was processed lately (a redelivery after a lost ack, another
 * instance's retry) is acknowledged without reaching the handler. It is a
 * fast path only: the database's inbox (ex_inbox_*) still decides, so an id
 * that fell out of the window is applied once all the same.
 *
 * Uses svc's events handle (msvc_service_events(), from MSVC_EVENTS):
 * ensures both streams (each side
 * ensures both, so the services may start in any order), then subscribes;
 * starts the relay of the outbox in the database of dbs. On failure returns
 * a libmsvc code with one line in err.
 */
int ex_bus_open(msvc_service_t *svc, ex_db_set_t *dbs, const ex_bus_opts_t *opts,
                ex_bus_t **out, char *err, size_t errlen);

/* The pool for database work of event handlers (loop thread only). */
msvc_work_t *ex_bus_pool(ex_bus_t *bus);

/* The handler's work for msg is committed: remembers its event id in the
 * dedup window and acknowledges it. Loop thread. */
void ex_bus_processed(ex_bus_t *bus, msvc_events_msg_t *msg);

/* After a commit that added outbox rows. Thread-safe; NULL is a no-op. */
void ex_bus_kick(ex_bus_t *bus);

/* Whether the service may still settle and publish (not closing). */
bool ex_bus_live(const ex_bus_t *bus);

/* Closes everything; cb runs when done. Call once the service has stopped
 * (its on_stopped callback): the service has closed its events handle, and
 * the subscription with it. NULL is a no-op (cb is called at once). */
void ex_bus_close(ex_bus_t *bus, void (*cb)(void *data), void *data);

#endif /* EX_BUS_H */
