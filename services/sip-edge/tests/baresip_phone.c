/* baresip_phone.c - see baresip_phone.h. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "baresip_phone.h"
#include "sipdrain/event.h"
#include "support.h"

#define BARESIP_BIN "/usr/bin/baresip"

/* The first of two free loopback ports in a row (even when even: libre's
 * RTP socket takes an even port, RTCP the next one). sdt_free_port() walks
 * the ports in order and never hands one out twice, so two calls in a row
 * that give p and p + 1 reserve both for this process. */
static int free_port_pair(bool even)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int p = sdt_free_port();

        if (even && (p & 1))
            continue;
        if (sdt_free_port() == p + 1)
            return p;
    }
    cr_assert_fail("no two free loopback ports in a row");
    return -1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The config of a headless phone (baresip_phone.h): modules for SIP, G.711,
 * an in-process audio loop, the account file and the command menu. stdio
 * reads the commands from stdin (a pipe: it says "could not setup
 * terminal" and works). */
static void write_config(const struct baresip *b, const struct baresip_opts *o)
{
    char text[2048], account[256], registrar[48] = "", cafile[160] = "";
    const char *addr = o->addr != NULL ? o->addr : "127.0.0.1";
    const char *reg_host = o->registrar_host != NULL ? o->registrar_host : "127.0.0.1";

    if (o->tls_ca != NULL)
        snprintf(cafile, sizeof(cafile), "sip_cafile\t\t%s\n", o->tls_ca);

    snprintf(text, sizeof(text),
             "poll_method\t\tepoll\n"
             "sip_listen\t\t%s:%d\n"
             "net_interface\t\t%s\n"
             "%s"
             "call_local_timeout\t120\n"
             "call_max_calls\t\t4\n"
             "audio_player\t\taubridge,nil\n"
             "audio_source\t\taubridge,nil\n"
             "audio_alert\t\taubridge,nil\n"
             "rtp_ports\t\t%d-%d\n"
             "module_path\t\t/usr/lib/baresip/modules\n"
             "module\t\t\tstdio.so\n"
             "module\t\t\tg711.so\n"
             "module\t\t\taubridge.so\n"
             "module_tmp\t\taccount.so\n"
             "module_app\t\tmenu.so\n",
             addr, b->sip_port, addr, cafile, b->rtp_port, b->rtp_port + 1);
    write_file(b->dir, "config", text);
    if (o->registrar_tls_port > 0)
        snprintf(registrar, sizeof(registrar), ":%d;transport=tls", o->registrar_tls_port);
    else if (o->registrar_port > 0)
        snprintf(registrar, sizeof(registrar), ":%d", o->registrar_port);
    /* the password of every test DN (sdt_db_create) */
    snprintf(account, sizeof(account), "<sip:%s@%s%s>;auth_pass=%s;regint=%d;answermode=%s\n",
             o->user, reg_host, registrar, o->password != NULL ? o->password : SDT_PHONE_PASSWORD,
             o->registrar_port > 0 || o->registrar_tls_port > 0 ? (o->regint > 0 ? o->regint : 60)
                                                                : 0,
             o->auto_answer ? "auto" : "manual");
    write_file(b->dir, "accounts", account);
    write_file(b->dir, "contacts", ""); /* else baresip writes a template */
}

void baresip_start(struct baresip *b, const struct baresip_opts *o)
{
    int fds[2];
    int64_t deadline = sd_mono_ms() + 30000;

    memset(b, 0, sizeof(*b));
    signal(SIGPIPE, SIG_IGN); /* a command to a dead baresip fails the test, not kills it */
    snprintf(b->dir, sizeof(b->dir), "/tmp/sipdrain-baresip-%s-XXXXXX", o->name);
    cr_assert_not_null(mkdtemp(b->dir), "mkdtemp: %s", strerror(errno));
    snprintf(b->log, sizeof(b->log), "%s.log", b->dir);
    b->sip_port = free_port_pair(false);
    b->rtp_port = free_port_pair(true);
    write_config(b, o);
    cr_assert_eq(pipe(fds), 0);
    b->pid = fork();
    cr_assert(b->pid >= 0);
    if (b->pid == 0) {
        int out = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no phone outlives a failed test */
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
            close(out);
        }
        /* -s: the SIP trace; -t: gone after 10 minutes whatever happens */
        if (o->netns != NULL) /* ip enters the namespace and execs baresip: same pid */
            execl("/usr/sbin/ip", "ip", "netns", "exec", o->netns, BARESIP_BIN, "-f", b->dir, "-s",
                  "-t", "600", (char *)NULL);
        else
            execl(BARESIP_BIN, "baresip", "-f", b->dir, "-s", "-t", "600", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    b->stdin_fd = fds[1];
    while (baresip_count(b, "baresip is ready.") < 1) {
        int status;

        cr_assert_eq(waitpid(b->pid, &status, WNOHANG), 0, "baresip exited at start (%s)", b->log);
        cr_assert_lt(sd_mono_ms(), deadline, "baresip not ready (%s)", b->log);
        usleep(50000);
    }
}

void baresip_command(struct baresip *b, const char *command)
{
    char line[512];
    int len = snprintf(line, sizeof(line), "%s\n", command);

    cr_assert_eq(write(b->stdin_fd, line, (size_t)len), len, "baresip command %s: %s", command,
                 strerror(errno));
}

/* The whole output so far (NUL bytes, if any, turned into blanks). */
static char *read_log(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t n = 0, cap = 0, got;

    if (f == NULL)
        return calloc(1, 1);
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            text = realloc(text, cap + 1);
            cr_assert_not_null(text);
        }
        got = fread(text + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\0')
            text[i] = ' ';
    }
    text[n] = '\0';
    return text;
}

int baresip_count(const struct baresip *b, const char *text)
{
    char *all = read_log(b->log);
    int n = 0;

    for (const char *p = strstr(all, text); p != NULL; p = strstr(p + 1, text))
        n++;
    free(all);
    return n;
}

bool baresip_wait(const struct baresip *b, const char *text, int n, int timeout_ms)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;

    while (baresip_count(b, text) < n) {
        if (sd_mono_ms() > deadline)
            return false;
        usleep(50000);
    }
    return true;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

int baresip_stop(struct baresip *b, int timeout_ms)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    int status = 0, rc = -1;
    pid_t got = 0;

    if (b->pid <= 0)
        return -1;
    if (write(b->stdin_fd, "/quit\n", 6) < 0) {
        /* already gone: waitpid below says how */
    }
    while ((got = waitpid(b->pid, &status, WNOHANG)) == 0 && sd_mono_ms() < deadline)
        usleep(50000);
    if (got == 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &status, 0);
    } else if (got == b->pid && WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
    }
    close(b->stdin_fd);
    b->pid = 0;
    remove_dir(b->dir);
    return rc;
}
