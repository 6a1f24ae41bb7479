/*
 * A small HTTP/1.1 GET client for mir-bench --metrics (scrape.h): one request per connection
 * ("Connection: close"), non-blocking socket under one overall deadline, the answer read into a
 * buffer bounded by the header and body limits. It speaks only what a replica's libmicrohttpd
 * endpoint answers (a status line, headers, a body sized by Content-Length, chunked, or up to the
 * close), and treats the answer as untrusted: every length is checked before it is used.
 *
 * Name resolution (getaddrinfo) is not under the deadline; the URLs it is meant for are
 * addresses on loopback or a LAN, as `cluster.sh status` prints them.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scrape.h"

/* Formats into err (errcap bytes), prefixed with the URL of the request. */
static void http_fail(char *err, size_t errcap, const scrape_url *u, const char *path,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void http_fail(char *err, size_t errcap, const scrape_url *u, const char *path,
                      const char *fmt, ...) {
  int k = snprintf(err, errcap, "http://%s%s%s:%s%s%s: ", strchr(u->host, ':') ? "[" : "", u->host,
                   strchr(u->host, ':') ? "]" : "", u->port, u->prefix, path);
  if (k < 0 || (size_t)k >= errcap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + k, errcap - (size_t)k, fmt, ap);
  va_end(ap);
}

/* ---- URLs ---- */

/* Splits "host[:port]" or "[v6][:port]" (hostport, hl bytes) into u. 0 or -1. */
static int url_hostport(const char *hp, size_t hl, scrape_url *u) {
  const char *host = hp, *port = NULL;
  size_t host_len = hl;
  if (hl > 0 && hp[0] == '[') {
    const char *close = memchr(hp, ']', hl);
    if (close == NULL) return -1;
    host = hp + 1;
    host_len = (size_t)(close - host);
    size_t rest = hl - (size_t)(close + 1 - hp);
    if (rest > 0 && close[1] != ':') return -1;
    if (rest > 0) port = close + 2;
  } else {
    const char *colon = memchr(hp, ':', hl);
    if (colon != NULL) {
      host_len = (size_t)(colon - hp);
      port = colon + 1;
    }
  }
  size_t port_len = port != NULL ? hl - (size_t)(port - hp) : 0;
  if (host_len == 0 || host_len >= sizeof u->host || (port != NULL && port_len == 0) ||
      port_len >= sizeof u->port) {
    return -1;
  }
  memcpy(u->host, host, host_len);
  u->host[host_len] = '\0';
  for (size_t i = 0; i < port_len; i++) {
    if (!isdigit((unsigned char)port[i])) return -1;
  }
  if (port != NULL) {
    memcpy(u->port, port, port_len);
    u->port[port_len] = '\0';
    long p = strtol(u->port, NULL, 10);
    if (p < 1 || p > 65535) return -1;
  } else {
    snprintf(u->port, sizeof u->port, "80");
  }
  return 0;
}

int scrape_url_parse(const char *text, scrape_url *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  const char *p = text;
  if (strncasecmp(p, "https://", 8) == 0) {
    snprintf(err, errcap, "%s: only http:// is supported (the endpoint has no TLS)", text);
    return -1;
  }
  if (strncasecmp(p, "http://", 7) == 0) p += 7;
  size_t hl = strcspn(p, "/?#");
  if (p[hl] == '?' || p[hl] == '#' || url_hostport(p, hl, out) != 0) {
    snprintf(err, errcap, "%s: not a base URL of the form http://host:port[/prefix]", text);
    return -1;
  }
  const char *prefix = p + hl;
  size_t pl = strlen(prefix);
  if (strcspn(prefix, "?# \t\r\n") != pl) {
    snprintf(err, errcap, "%s: the path must not hold a query, a fragment or spaces", text);
    return -1;
  }
  while (pl > 0 && prefix[pl - 1] == '/') pl--;
  if (pl >= 8 && memcmp(prefix + pl - 8, "/metrics", 8) == 0) pl -= 8;
  if (pl >= sizeof out->prefix) {
    snprintf(err, errcap, "%s: path longer than %zu bytes", text, sizeof out->prefix - 1);
    return -1;
  }
  memcpy(out->prefix, prefix, pl);
  out->prefix[pl] = '\0';
  return 0;
}

/* ---- the connection ---- */

static double http_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timed out, -1 error. */
static int http_wait(int fd, short events, double deadline_ms) {
  for (;;) {
    double left = deadline_ms - http_now_ms();
    if (left <= 0) return 0;
    struct pollfd pf = {.fd = fd, .events = events};
    int k = poll(&pf, 1, (int)(left + 1));
    if (k > 0) return 1;
    if (k < 0 && errno != EINTR) return -1;
  }
}

/* Connects to one address before the deadline: the socket, or -1 with errno set (ETIMEDOUT). */
static int http_connect_one(const struct addrinfo *a, double deadline_ms) {
  int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
  if (errno == EINPROGRESS) {
    int w = http_wait(fd, POLLOUT, deadline_ms);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) return fd;
    errno = w == 0 ? ETIMEDOUT : (soerr != 0 ? soerr : errno);
  }
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* Resolves and connects (every address in turn). The socket, or -1 with err set. */
static int http_connect(const scrape_url *u, const char *path, double deadline_ms, char *err,
                        size_t errcap) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(u->host, u->port, &hints, &ai);
  if (rc != 0) {
    http_fail(err, errcap, u, path, "cannot resolve %s: %s", u->host, gai_strerror(rc));
    return -1;
  }
  int fd = -1, e = 0;
  for (const struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
    fd = http_connect_one(a, deadline_ms);
    if (fd < 0) e = errno;
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    http_fail(err, errcap, u, path, "cannot connect: %s",
              e == ETIMEDOUT ? "timed out" : strerror(e));
  }
  return fd;
}

/* Sends all of buf before the deadline. 0, or -1 with errno set. */
static int http_send_all(int fd, const char *buf, size_t len, double deadline_ms) {
  size_t off = 0;
  while (off < len) {
    ssize_t k = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (k > 0) {
      off += (size_t)k;
    } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
      return -1;
    } else if (k < 0 && errno == EAGAIN) {
      int w = http_wait(fd, POLLOUT, deadline_ms);
      if (w <= 0) {
        if (w == 0) errno = ETIMEDOUT;
        return -1;
      }
    }
  }
  return 0;
}

/* ---- the answer ---- */

/* What is known of the answer after its headers. */
typedef struct http_head {
  size_t head_len; /* bytes of the status line and headers, blank line included */
  int status;
  bool chunked;
  bool has_length;
  size_t length;
} http_head;

/* A buffer read from the socket, bounded. */
typedef struct http_buf {
  char *p;
  size_t len, cap, max;
  bool eof;
} http_buf;

/* Reads once more into b (waiting up to the deadline). 0, or -1 with err set. */
static int http_read_more(int fd, http_buf *b, double deadline_ms, const scrape_url *u,
                          const char *path, char *err, size_t errcap) {
  if (b->len == b->max) {
    http_fail(err, errcap, u, path, "answer larger than %zu bytes", b->max);
    return -1;
  }
  if (b->cap - b->len < 4096 && b->cap < b->max + 1) {
    size_t cap = b->cap ? 2 * b->cap : 16384;
    if (cap > b->max + 1) cap = b->max + 1;
    char *q = realloc(b->p, cap);
    if (q == NULL) {
      http_fail(err, errcap, u, path, "out of memory");
      return -1;
    }
    b->p = q;
    b->cap = cap;
  }
  for (;;) {
    size_t room = b->cap - 1 - b->len;
    ssize_t k = recv(fd, b->p + b->len, room < b->max - b->len ? room : b->max - b->len, 0);
    if (k > 0) {
      b->len += (size_t)k;
      return 0;
    }
    if (k == 0) {
      b->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      http_fail(err, errcap, u, path, "read: %s", strerror(errno));
      return -1;
    }
    int w = http_wait(fd, POLLIN, deadline_ms);
    if (w <= 0) {
      http_fail(err, errcap, u, path, "%s",
                w == 0 ? "timed out waiting for the answer" : "poll failed");
      return -1;
    }
  }
}

/* The value of a header line "name: value" if its name is `name` (case-insensitive), else NULL. */
static const char *http_header_value(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
  line += n + 1;
  while (*line == ' ' || *line == '\t') line++;
  return line;
}

/* Parses the status line and headers of b (NUL-terminated up to head_len) into h. 0 or -1. */
static int http_parse_head(char *text, size_t body_max, http_head *h, const char **why) {
  if (strncmp(text, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)text[7]) || text[8] != ' ' ||
      !isdigit((unsigned char)text[9]) || !isdigit((unsigned char)text[10]) ||
      !isdigit((unsigned char)text[11]) || (text[12] != ' ' && text[12] != '\r')) {
    *why = "not an HTTP/1.x status line";
    return -1;
  }
  h->status = atoi(text + 9);
  char *save = NULL;
  strtok_r(text, "\n", &save); /* the status line */
  for (char *line = strtok_r(NULL, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    line[strcspn(line, "\r")] = '\0';
    if (line[0] == '\0') break;
    if (strchr(line, ':') == NULL) {
      *why = "a header line without a colon";
      return -1;
    }
    const char *v = http_header_value(line, "content-length");
    if (v != NULL) {
      char *end = NULL;
      errno = 0;
      unsigned long long cl = strtoull(v, &end, 10);
      if (!isdigit((unsigned char)v[0]) || errno != 0 || (*end != '\0' && *end != ' ')) {
        *why = "a malformed Content-Length";
        return -1;
      }
      if (cl > body_max) {
        *why = "a Content-Length beyond the body limit";
        return -1;
      }
      h->has_length = true;
      h->length = (size_t)cl;
    }
    v = http_header_value(line, "transfer-encoding");
    if (v != NULL && strcasestr(v, "chunked") != NULL) h->chunked = true;
  }
  return 0;
}

/* Decodes a chunked body (in, n bytes) in place. The decoded length, or -1 (malformed or
 * truncated, *why set). */
static long http_dechunk(char *in, size_t n, size_t body_max, const char **why) {
  size_t r = 0, w = 0;
  for (;;) {
    size_t digits = 0, size = 0;
    while (r < n && isxdigit((unsigned char)in[r]) && digits < 8) {
      char c = in[r++];
      size = size * 16 + (size_t)(isdigit((unsigned char)c) ? c - '0' : (tolower(c) - 'a' + 10));
      digits++;
    }
    const char *eol = digits > 0 ? memchr(in + r, '\n', n - r) : NULL;
    if (eol == NULL) {
      *why = digits == 0 ? "a malformed chunk size" : "a truncated chunked body";
      return -1;
    }
    r = (size_t)(eol - in) + 1; /* past extensions and CRLF */
    if (size == 0) return (long)w;
    if (size > body_max - w) {
      *why = "a chunked body beyond the body limit";
      return -1;
    }
    if (size > n - r || n - r - size < 2 || in[r + size] != '\r' || in[r + size + 1] != '\n') {
      *why = "a truncated chunked body";
      return -1;
    }
    memmove(in + w, in + r, size);
    w += size;
    r += size + 2;
  }
}

/* Reads until the blank line that ends the headers. The head's length, or 0 with err set. */
static size_t http_read_head(int fd, http_buf *b, double deadline_ms, const scrape_url *u,
                             const char *path, char *err, size_t errcap) {
  for (;;) {
    const char *end = b->len >= 4 ? memmem(b->p, b->len, "\r\n\r\n", 4) : NULL;
    if (end != NULL && (size_t)(end - b->p) + 4 <= SCRAPE_HEADER_BYTES_MAX) {
      return (size_t)(end - b->p) + 4;
    }
    if (end != NULL || b->len > SCRAPE_HEADER_BYTES_MAX) {
      http_fail(err, errcap, u, path, "status line and headers longer than %u bytes",
                SCRAPE_HEADER_BYTES_MAX);
      return 0;
    }
    if (b->eof) {
      http_fail(err, errcap, u, path, "%s",
                b->len == 0 ? "connection closed without an answer"
                            : "connection closed inside the headers");
      return 0;
    }
    if (http_read_more(fd, b, deadline_ms, u, path, err, errcap) != 0) return 0;
  }
}

/* Reads the body after the head h into b and leaves it, decoded, at the start of b->p
 * (NUL-terminated). Its length, or -1 with err set. */
static long http_read_body(int fd, http_buf *b, const http_head *h, size_t body_max,
                           double deadline_ms, const scrape_url *u, const char *path, char *err,
                           size_t errcap) {
  bool sized = h->has_length && !h->chunked;
  while (!b->eof && !(sized && b->len - h->head_len >= h->length)) {
    if (http_read_more(fd, b, deadline_ms, u, path, err, errcap) != 0) return -1;
  }
  size_t n = b->len - h->head_len;
  if (sized && n < h->length) {
    http_fail(err, errcap, u, path, "body truncated: %zu of %zu bytes", n, h->length);
    return -1;
  }
  if (sized) n = h->length;
  memmove(b->p, b->p + h->head_len, n);
  if (h->chunked) {
    const char *why = NULL;
    long k = http_dechunk(b->p, n, body_max, &why);
    if (k < 0) {
      http_fail(err, errcap, u, path, "%s", why);
      return -1;
    }
    n = (size_t)k;
  }
  if (n > body_max) {
    http_fail(err, errcap, u, path, "body larger than %zu bytes", body_max);
    return -1;
  }
  b->p[n] = '\0';
  return (long)n;
}

/* The first line of a body (borrowed), printable characters only, into out (cap bytes). */
static void http_first_line(const char *body, size_t len, char *out, size_t cap) {
  size_t w = 0;
  for (size_t i = 0; i < len && body[i] != '\n' && w + 1 < cap && w < 160; i++) {
    out[w++] = isprint((unsigned char)body[i]) ? body[i] : '?';
  }
  out[w] = '\0';
}

/* Sends the request and reads the answer into b; the head goes to h. 0, or -1 with err set. */
static int http_exchange(int fd, const scrape_url *u, const char *path, size_t body_max,
                         double deadline_ms, http_buf *b, http_head *h, char *err, size_t errcap) {
  char req[SCRAPE_HOST_MAX + 2 * SCRAPE_PATH_MAX + 128];
  bool v6 = strchr(u->host, ':') != NULL;
  int k = snprintf(req, sizeof req,
                   "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nAccept: */*\r\n"
                   "User-Agent: mir-bench\r\nConnection: close\r\n\r\n",
                   u->prefix, path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
  if (k < 0 || (size_t)k >= sizeof req) {
    http_fail(err, errcap, u, path, "request too long");
    return -1;
  }
  if (http_send_all(fd, req, (size_t)k, deadline_ms) != 0) {
    http_fail(err, errcap, u, path, "send: %s", errno == ETIMEDOUT ? "timed out" : strerror(errno));
    return -1;
  }
  h->head_len = http_read_head(fd, b, deadline_ms, u, path, err, errcap);
  if (h->head_len == 0) return -1;
  char head[SCRAPE_HEADER_BYTES_MAX + 1];
  memcpy(head, b->p, h->head_len);
  head[h->head_len] = '\0';
  const char *why = NULL;
  if (http_parse_head(head, body_max, h, &why) != 0) {
    http_fail(err, errcap, u, path, "malformed answer: %s", why);
    return -1;
  }
  return 0;
}

int scrape_get(const scrape_url *u, const char *path, int timeout_ms, size_t body_max, char **body,
               size_t *len, char *err, size_t errcap) {
  *body = NULL;
  *len = 0;
  double deadline_ms = http_now_ms() + (timeout_ms > 0 ? timeout_ms : SCRAPE_TIMEOUT_MS_DEFAULT);
  int fd = http_connect(u, path, deadline_ms, err, errcap);
  if (fd < 0) return -1;
  /* Room for the head, the body and the framing of a chunked body (a few bytes per chunk). */
  http_buf b = {.max = SCRAPE_HEADER_BYTES_MAX + body_max + body_max / 4 + 4096};
  http_head h = {0};
  int rc = http_exchange(fd, u, path, body_max, deadline_ms, &b, &h, err, errcap);
  long n = rc == 0 ? http_read_body(fd, &b, &h, body_max, deadline_ms, u, path, err, errcap) : -1;
  close(fd);
  if (n >= 0 && h.status != 200) {
    char first[200];
    http_first_line(b.p, (size_t)n, first, sizeof first);
    http_fail(err, errcap, u, path, "HTTP status %d%s%s", h.status, first[0] ? ": " : "", first);
    n = -1;
  }
  if (n < 0) {
    free(b.p);
    return -1;
  }
  *body = b.p;
  *len = (size_t)n;
  return 0;
}
