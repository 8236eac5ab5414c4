/* suroot.h - run libcommon's Kafka and PostgreSQL pieces inside sofia-sip's
 * su_root (sip-edge's only event loop; STYLE.md "Event loops and the bus").
 *
 * A watch calls cb on the su_root thread whenever fd is readable (a Kafka
 * wake-up pipe, a PostgreSQL socket) and every tick_ms as well, because
 * librdkafka's pipe fires only on an empty -> non-empty edge. cb must not
 * block: call the non-blocking *_poll / *_run functions from it.
 *
 * Built as its own library (sipdrain_suroot) so only sip-edge links sofia.
 */
#ifndef SIPDRAIN_SUROOT_H
#define SIPDRAIN_SUROOT_H

#include <sofia-sip/su_wait.h>

struct sd_suroot_watch;

typedef void sd_suroot_cb(void *arg);

struct sd_suroot_watch *sd_suroot_watch_new(su_root_t *root, int fd, int tick_ms, sd_suroot_cb *cb,
                                            void *arg);
void sd_suroot_watch_free(struct sd_suroot_watch *w);

#endif
