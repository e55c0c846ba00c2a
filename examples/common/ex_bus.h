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
  msvc_events_handler_fn handler;
  void *data;
} ex_bus_opts_t;

/*
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

/* After a commit that added outbox rows. Thread-safe; NULL is a no-op. */
void ex_bus_kick(ex_bus_t *bus);

/* Whether the service may still settle and publish (not closing). */
bool ex_bus_live(const ex_bus_t *bus);

/* Closes everything; cb runs when done. Call once the service has stopped
 * (its on_stopped callback): the service has closed its events handle, and
 * the subscription with it. NULL is a no-op (cb is called at once). */
void ex_bus_close(ex_bus_t *bus, void (*cb)(void *data), void *data);

#endif /* EX_BUS_H */
