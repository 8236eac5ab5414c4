/* edge_bus.h - sip-edge's bus thread: everything that may wait on
 * PostgreSQL or Kafka, so the SIP thread never does.
 *
 * Its own sd_loop on its own thread runs:
 *   - the messages of the SIP thread (to_bus): registrations, edge.status
 *     heartbeats (edges row + event), events through the outbox;
 *   - the outbox relay of this edge (owner "sip-edge/<edge id>");
 *   - the edge.control consumer: group "<prefix>sip-edge.<edge id>" of its
 *     own (every edge reads every partition and keeps what is keyed by its
 *     id). A restarted edge goes on from its committed offset; commands
 *     older than 30 s before the start are history and skipped, so a new
 *     edge does not replay old drains. Commands go to the SIP thread
 *     (to_sip) as they come, without PostgreSQL: an edge drains even when
 *     the database is away. Malformed ones are dead-lettered.
 */
#ifndef SIPDRAIN_EDGE_BUS_H
#define SIPDRAIN_EDGE_BUS_H

#include "edge_queue.h"
#include "sipdrain/err.h"

/* Retry-After of what the edge refuses while its database is away: a new
 * call (503, so the caller fails over to another edge) and a REGISTER (500). */
#define EDGE_DB_RETRY_AFTER_S 5
#define EDGE_DB_RETRY_AFTER   EDGE_STRING(EDGE_DB_RETRY_AFTER_S) /* "5", for the header */
#define EDGE_STRING(x)        EDGE_STRING_(x)
#define EDGE_STRING_(x)       #x

struct edge_bus_config {
    const char *pg_dsn;
    const char *brokers;
    const char *edge_id;
    const char *site;
    const char *source;   /* "sip-edge/<edge id>": event source and outbox owner */
    const char *realm;    /* SIPDRAIN_SIP_REALM: whose credentials REGISTERs are checked with */
    int max_contacts;     /* SIPDRAIN_SIP_MAX_CONTACTS: live contacts kept per DN */
    int queue_max_wait_s; /* SIPDRAIN_QUEUE_MAX_WAIT: 0 = no queue (480 no_agent at once) */
    int queue_max_calls;  /* SIPDRAIN_QUEUE_MAX_CALLS: waiting calls a site holds at most */
    int route_db_wait_s;  /* SIPDRAIN_ROUTE_DB_WAIT: how long a new call waits for PostgreSQL */
};

struct edge_bus;

/* Starts the thread. The queues stay the caller's. */
struct edge_bus *edge_bus_start(const struct edge_bus_config *cfg, struct edge_queue *to_bus,
                                struct edge_queue *to_sip, struct sd_err *err) SD_MUST_CHECK;
/* Handles what to_bus still holds, publishes what the outbox holds (for up
 * to timeout_ms), stops the thread and frees everything. Blocks: call it
 * after the SIP loop has ended. */
void edge_bus_stop(struct edge_bus *b, int timeout_ms);

#endif
