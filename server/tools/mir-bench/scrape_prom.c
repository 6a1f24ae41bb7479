/*
 * The Prometheus text exposition format (version 0.0.4), as mir-bench --metrics reads it from a
 * replica (scrape.h). The page is copied once and parsed in place: names, label keys and
 * unescaped label values are NUL-terminated inside the copy, and samples point into it, so a
 * page costs its own size plus one small record per sample.
 *
 * The page is untrusted: line length and line count are bounded before anything else, every
 * token is checked character by character, and the first malformed line ends the parse with its
 * number and what is wrong. Comment lines are not interpreted (the bench needs sample values
 * only), so a page with unusual HELP text still reads.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape.h"

static bool prom_blank(char c) {
  return c == ' ' || c == '\t';
}

static char *prom_skip_blanks(char *p) {
  while (prom_blank(*p)) p++;
  return p;
}

/* Past a name of [a-zA-Z_:][a-zA-Z0-9_:]* (colons only if colons), or p itself if none. */
static char *prom_name_end(char *p, bool colons) {
  if (!(isalpha((unsigned char)*p) || *p == '_' || (colons && *p == ':'))) return p;
  p++;
  while (isalnum((unsigned char)*p) || *p == '_' || (colons && *p == ':')) p++;
  return p;
}

/* Unescapes a label value that starts after its opening quote, in place, and terminates it.
 * Returns the position after the closing quote, or NULL (*why set). */
static char *prom_label_value(char *p, const char **why) {
  char *w = p;
  for (;;) {
    char c = *p++;
    if (c == '\0') {
      *why = "unterminated label value";
      return NULL;
    }
    if (c == '"') break;
    if (c == '\\') {
      char e = *p++;
      if (e == 'n') {
        c = '\n';
      } else if (e == '\\' || e == '"') {
        c = e;
      } else {
        *why = "a bad escape in a label value (only \\\\, \\\" and \\n)";
        return NULL;
      }
    }
    *w++ = c;
  }
  *w = '\0';
  return p;
}

/* Parses the labels after '{' into s. Returns the position after '}', or NULL (*why set). */
static char *prom_labels(char *p, prom_sample *s, const char **why) {
  for (;;) {
    p = prom_skip_blanks(p);
    if (*p == '}') return p + 1;
    char *key = p, *key_end = prom_name_end(p, false);
    if (key_end == key) {
      *why = "expected a label name or '}'";
      return NULL;
    }
    p = prom_skip_blanks(key_end);
    if (*p != '=') {
      *why = "expected '=' after a label name";
      return NULL;
    }
    p = prom_skip_blanks(p + 1);
    if (*p != '"') {
      *why = "expected '\"' to open a label value";
      return NULL;
    }
    if (s->n_labels == PROM_LABELS_MAX) {
      *why = "more labels than a sample may have (8)";
      return NULL;
    }
    *key_end = '\0'; /* after the checks above read what it held */
    s->keys[s->n_labels] = key;
    s->values[s->n_labels] = p + 1;
    p = prom_label_value(p + 1, why);
    if (p == NULL) return NULL;
    s->n_labels++;
    p = prom_skip_blanks(p);
    if (*p == ',') {
      p++;
    } else if (*p != '}') {
      *why = "expected ',' or '}' after a label value";
      return NULL;
    }
  }
}

/* The value and the optional timestamp (an integer) that end a sample line. 0 or -1. */
static int prom_value(char *p, prom_sample *s, const char **why) {
  p = prom_skip_blanks(p);
  char *tok = p;
  while (*p != '\0' && !prom_blank(*p)) p++;
  char saved = *p;
  *p = '\0';
  char *end = NULL;
  s->value = strtod(tok, &end);
  *p = saved;
  if (tok == p || end != p) {
    *why = "expected a number (or NaN, +Inf, -Inf) as the value";
    return -1;
  }
  p = prom_skip_blanks(p);
  if (*p == '\0') return 0;
  char *ts = p;
  if (*p == '-') p++;
  while (isdigit((unsigned char)*p)) p++;
  if (p == ts || (p - ts == 1 && *ts == '-') || p - ts > 20 || *prom_skip_blanks(p) != '\0') {
    *why = "unexpected text after the value (only an integer timestamp may follow)";
    return -1;
  }
  return 0;
}

/* Parses one sample line (NUL-terminated, in place) into s. 0 or -1 (*why set). */
static int prom_sample_line(char *p, prom_sample *s, const char **why) {
  memset(s, 0, sizeof *s);
  char *end = prom_name_end(p, true);
  if (end == p) {
    *why = "expected a metric name";
    return -1;
  }
  s->name = p;
  char c = *end;
  *end = '\0';
  if (c == '{') {
    p = prom_labels(end + 1, s, why);
    if (p == NULL) return -1;
    if (!prom_blank(*p)) {
      *why = "expected a blank between the labels and the value";
      return -1;
    }
  } else if (prom_blank(c)) {
    p = end + 1;
  } else {
    *why = c == '\0' ? "a metric name without a value" : "an unexpected character in the name";
    return -1;
  }
  return prom_value(p, s, why);
}

/* Appends a sample slot to out (growing its array). NULL on allocation failure. */
static prom_sample *prom_push(prom_page *out, size_t *cap) {
  if (out->n == *cap) {
    size_t ncap = *cap ? 2 * *cap : 256;
    prom_sample *q = realloc(out->samples, ncap * sizeof(*q));
    if (q == NULL) return NULL;
    out->samples = q;
    *cap = ncap;
  }
  return &out->samples[out->n++];
}

int prom_parse(const char *page, size_t len, prom_page *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  out->text = malloc(len + 1);
  if (out->text == NULL) {
    snprintf(err, errcap, "out of memory for a page of %zu bytes", len);
    return -1;
  }
  memcpy(out->text, page, len);
  out->text[len] = '\0';
  size_t cap = 0, line_no = 0;
  char *p = out->text, *stop = out->text + len;
  while (p < stop) {
    char *nl = memchr(p, '\n', (size_t)(stop - p));
    char *eol = nl != NULL ? nl : stop;
    size_t n = (size_t)(eol - p);
    const char *why = NULL;
    if (++line_no > PROM_LINES_MAX) {
      snprintf(err, errcap, "more than %d lines", PROM_LINES_MAX);
      return -1;
    }
    if (n > PROM_LINE_MAX) why = "longer than the line limit (4096 bytes)";
    if (why == NULL && memchr(p, '\0', n) != NULL) why = "a NUL byte";
    *eol = '\0';
    if (n > 0 && eol[-1] == '\r') eol[-1] = '\0';
    char *q = prom_skip_blanks(p);
    if (why == NULL && *q != '\0' && *q != '#') {
      prom_sample *s = prom_push(out, &cap);
      if (s == NULL) why = "out of memory";
      if (s != NULL && prom_sample_line(q, s, &why) != 0) out->n--;
    }
    if (why != NULL) {
      snprintf(err, errcap, "line %zu: %s", line_no, why);
      return -1;
    }
    p = eol + 1;
  }
  return 0;
}

void prom_page_fini(prom_page *p) {
  free(p->samples);
  free(p->text);
  memset(p, 0, sizeof *p);
}

const char *prom_label(const prom_sample *s, const char *key) {
  for (size_t i = 0; i < s->n_labels; i++) {
    if (strcmp(s->keys[i], key) == 0) return s->values[i];
  }
  return NULL;
}

size_t prom_sum(const prom_page *p, const char *name, const char *key, const char *value,
                double *sum) {
  size_t n = 0;
  *sum = 0;
  for (size_t i = 0; i < p->n; i++) {
    const prom_sample *s = &p->samples[i];
    if (strcmp(s->name, name) != 0) continue;
    if (key != NULL) {
      const char *v = prom_label(s, key);
      if (v == NULL || strcmp(v, value) != 0) continue;
    }
    *sum += s->value;
    n++;
  }
  return n;
}
