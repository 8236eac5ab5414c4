/* fault.c - named crash points (see sipdrain/fault.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/fault.h"

void sd_crashpoint(const char *name)
{
    static int loaded;
    static char want[128];
    static long nth = 1, seen;
    const char *env, *colon;
    size_t n;

    if (!loaded) {
        loaded = 1;
        env = getenv("SIPDRAIN_CRASHPOINT");
        if (env != NULL && *env != '\0') {
            colon = strchr(env, ':');
            n = colon ? (size_t)(colon - env) : strlen(env);
            if (n < sizeof(want)) {
                memcpy(want, env, n);
                want[n] = '\0';
            }
            if (colon != NULL)
                nth = strtol(colon + 1, NULL, 10);
        }
    }
    if (want[0] == '\0' || strcmp(want, name) != 0)
        return;
    if (++seen == nth)
        kill(getpid(), SIGKILL);
}
