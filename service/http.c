/* http.c - the service's HTTP front: libmicrohttpd, one thread per
 * connection (an arm or disarm may wait for a run; other requests go on),
 * JSON in and out, the token check, size limits. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "service_internal.h"

#define BODY_MAX (64 * 1024)

struct mg_http {
    struct MHD_Daemon *d;
    mg_service *s;
    char *token;
};

/* What a request has gathered between the handler's calls. */
typedef struct req {
    char *body;
    size_t n;
    int too_big;
} req;

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type, char *text, size_t n)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, mg_reply rep)
{
    char *text = rep.body ? json_dumps(rep.body, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(rep.body);
    if (!text)
        text = strdup("{\"error\": \"out of memory\"}");
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (t2) {
        text = t2;
        text[n++] = '\n';
        text[n] = 0;
    }
    return send_text(c, rep.status, "application/json", text, n);
}

static enum MHD_Result send_static(struct MHD_Connection *c, const char *type, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* Compares in time independent of where they differ. */
static int same(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < na; i++)
        d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return d == 0;
}

static int authorised(mg_http *h, struct MHD_Connection *c, const char *method)
{
    if (!h->token)
        return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (a && !strncmp(a, "Bearer ", 7) && same(a + 7, h->token))
        return 1;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    return !strcmp(method, "GET") && q && same(q, h->token);
}

static enum MHD_Result wrong_method(struct MHD_Connection *c, const char *allow)
{
    char *t = NULL;
    if (asprintf(&t, "{\"error\": \"method not allowed here: use %s\"}\n", allow) < 0)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(t);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    mg_http *h = cls;
    req *q = *con_cls;
    if (!q) { /* the headers are in: start gathering the body */
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->n + *upload_size > BODY_MAX)
            q->too_big = 1;
        else {
            char *b = realloc(q->body, q->n + *upload_size + 1);
            if (!b)
                return MHD_NO;
            q->body = b;
            memcpy(q->body + q->n, upload, *upload_size);
            q->n += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* the whole request is here */
    if (!authorised(h, c, method))
        return send_json(c, mg_reply_error(401, "this service needs its token: send 'Authorization: Bearer "
                                                "TOKEN' (the token is in the service's --token-file)"));
    if (q->too_big)
        return send_json(c, mg_reply_error(413, "the request's body is larger than %d bytes", BODY_MAX));
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/api/status"))
        return get ? send_json(c, mg_service_status(h->s)) : wrong_method(c, "GET");
    if (!strcmp(url, "/metrics")) {
        if (!get)
            return wrong_method(c, "GET");
        char *m = mg_service_metrics(h->s);
        if (!m)
            return send_json(c, mg_reply_error(503, "out of memory"));
        return send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", m, strlen(m));
    }
    if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
        return get ? send_static(c, "text/html; charset=utf-8", mg_service_page) : wrong_method(c, "GET");
    if (!strcmp(url, "/api/preview.png")) {
        if (!get)
            return wrong_method(c, "GET");
        uint8_t *png = NULL;
        size_t n = 0;
        mg_error e = {0};
        if (mg_service_preview(h->s, &png, &n, &e))
            return send_json(c, mg_reply_error(e.code == MG_EDATA ? 404 : 503, "%s", e.message));
        return send_text(c, 200, "image/png", (char *)png, n);
    }
    if (!strcmp(url, "/openapi.json"))
        return get ? send_static(c, "application/json", mg_service_openapi) : wrong_method(c, "GET");
    if (!strcmp(url, "/api/runs"))
        return get ? send_json(c, mg_service_runs(h->s)) : wrong_method(c, "GET");
    if (!strncmp(url, "/api/runs/", 10)) {
        if (!get)
            return wrong_method(c, "GET");
        const char *name = url + 10;
        if (!mg_service_name_ok(name))
            return send_json(c, mg_reply_error(400, "'%.200s' is not a run name", name));
        return send_json(c, mg_service_run(h->s, name));
    }
    if (!strcmp(url, "/api/arm") || !strcmp(url, "/api/pedestal")) {
        if (!post)
            return wrong_method(c, "POST");
        json_t *settings = NULL;
        if (q->n) {
            json_error_t je;
            settings = json_loadb(q->body, q->n, JSON_REJECT_DUPLICATES, &je);
            if (!settings)
                return send_json(c, mg_reply_error(400, "the body is not JSON (line %d, column %d): %s", je.line,
                                                   je.column, je.text));
        }
        mg_reply r = url[5] == 'a' ? mg_service_arm(h->s, settings) : mg_service_pedestal(h->s, settings);
        json_decref(settings);
        return send_json(c, r);
    }
    if (!strcmp(url, "/api/disarm"))
        return post ? send_json(c, mg_service_disarm(h->s)) : wrong_method(c, "POST");
    return send_json(c, mg_reply_error(404, "nothing at %.200s: see /openapi.json", url));
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    req *q = *con_cls;
    if (q) {
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

mg_http *mg_http_start(mg_service *s, const char *addr, const char *token, mg_error *err)
{
    char host[64];
    unsigned port = 0;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host || sscanf(colon + 1, "%u", &port) != 1 ||
        port == 0 || port > 65535) {
        mg_error_set(err, MG_EINVAL, "--http %s: give ADDRESS:PORT, e.g. 127.0.0.1:8080", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        mg_error_set(err, MG_EINVAL, "--http %s: '%s' is not an IPv4 address", addr, host);
        return NULL;
    }
    int loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
    if (!loopback && !token) {
        mg_error_set(err, MG_EINVAL, "--http %s is reachable from other machines: give a --token-file (clients send "
                                     "'Authorization: Bearer TOKEN'), or bind to 127.0.0.1", addr);
        return NULL;
    }
    mg_http *h = calloc(1, sizeof *h);
    if (!h || (token && !(h->token = strdup(token)))) {
        free(h);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    h->s = s;
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
                            NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_CONNECTION_LIMIT, 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!h->d) {
        free(h->token);
        free(h);
        mg_error_set(err, MG_ESYS, "cannot listen for HTTP on %s (is the port in use? another service running?)",
                     addr);
        return NULL;
    }
    return h;
}

void mg_http_stop(mg_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h->token);
    free(h);
}
