/*
 * The driver that runs a libFuzzer target as a plain test (mir_add_fuzzer, cmake/MirHelpers.cmake):
 * in the default build, where there is no libFuzzer, each fuzz target is also linked with this
 * file as <name>_replay and registered with ctest (label fuzz-replay), so that every decoder of
 * untrusted bytes meets some hostile input on every `make test`, not only when someone fuzzes.
 *
 *   <name>_replay [--runs N] [--seed S] [--max-len L] [SEED_DIR_OR_FILE ...]
 *
 * It feeds LLVMFuzzerTestOneInput, in order: every seed file as is (a folder's files in name
 * order); then N inputs (default 2000) from a xorshift64* generator started at S, half of them
 * random bytes of 0..L bytes (default 4096; small sizes are as likely as large ones), half
 * mutations of the seeds (bit flips, interesting bytes, inserted, erased, duplicated or spliced
 * ranges, truncation) when there are seeds. The same arguments give the same inputs, so a failure
 * reproduces. Each input sits in a buffer of exactly its size, so that AddressSanitizer sees an
 * overread by one byte. A target fails by aborting (MIR_ASSERT) or through a sanitizer; the driver
 * then writes the input to <name>.crash in the current folder and prints where it came from.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_RUNS_DEFAULT 2000
#define REPLAY_SEED_DEFAULT 0x6d69722d63ull /* "mir-c" */
#define REPLAY_MAX_LEN_DEFAULT 4096
#define REPLAY_SEED_FILE_MAX ((size_t)1 << 20)
#define REPLAY_SEEDS_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as with libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Present when a sanitizer runtime is linked: called before it ends the process. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

typedef struct replay_buf {
  uint8_t *data;
  size_t len;
  char *name; /* the seed file, for messages (owned) */
} replay_buf;

/* The input under test, for the crash report (read from a signal handler: plain globals). */
static const uint8_t *replay_cur_data;
static size_t replay_cur_len;
static char replay_cur_what[512];
static char replay_crash_path[512];

/* Writes the current input to replay_crash_path and says what it was. Only async-signal-safe
 * calls: it runs from a signal handler or a sanitizer's death callback. */
static void replay_report(void) {
  static const char pre[] = "replay: failed on ";
  static const char mid[] = "; the input is in ";
  static const char nl[] = "\n";
  if (write(2, pre, sizeof(pre) - 1) < 0) return;
  if (write(2, replay_cur_what, strlen(replay_cur_what)) < 0) return;
  int fd =
      replay_cur_data != NULL ? open(replay_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
  if (fd >= 0) {
    size_t off = 0;
    while (off < replay_cur_len) {
      ssize_t w = write(fd, replay_cur_data + off, replay_cur_len - off);
      if (w <= 0) break;
      off += (size_t)w;
    }
    close(fd);
    if (write(2, mid, sizeof(mid) - 1) < 0) return;
    if (write(2, replay_crash_path, strlen(replay_crash_path)) < 0) return;
  }
  if (write(2, nl, 1) < 0) return;
}

static void replay_on_signal(int sig) {
  replay_report();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* xorshift64*: small, fast and the same everywhere. */
static uint64_t replay_rng_state;
static uint64_t replay_rand(void) {
  uint64_t x = replay_rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  replay_rng_state = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* A number in 0..n-1 (n > 0). */
static size_t replay_below(size_t n) {
  return (size_t)(replay_rand() % n);
}

/* A length in 0..max, as likely in 0..15 as in 2048..4095: parsers fail early on most bytes, and
 * short inputs reach more branches per run. */
static size_t replay_len(size_t max) {
  size_t bits = replay_below(14);
  size_t n = replay_below(((size_t)1 << bits) + 1);
  return n > max ? max : n;
}

static void replay_run(const uint8_t *data, size_t len, const char *what) {
  /* A copy of exactly len bytes (malloc(0) may return NULL: one byte then, never read). */
  uint8_t *copy = malloc(len > 0 ? len : 1);
  if (copy == NULL) abort();
  if (len > 0) memcpy(copy, data, len);
  replay_cur_data = copy;
  replay_cur_len = len;
  snprintf(replay_cur_what, sizeof(replay_cur_what), "%s (%zu bytes)", what, len);
  LLVMFuzzerTestOneInput(copy, len);
  replay_cur_data = NULL;
  snprintf(replay_cur_what, sizeof(replay_cur_what), "the checks after %s", what);
  free(copy);
}

/* ---- seeds ---- */

static int replay_cmp_names(const void *a, const void *b) {
  return strcmp(((const replay_buf *)a)->name, ((const replay_buf *)b)->name);
}

static int replay_read_file(const char *path, replay_buf *out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *data = malloc(REPLAY_SEED_FILE_MAX);
  if (data == NULL) abort();
  size_t n = fread(data, 1, REPLAY_SEED_FILE_MAX, f);
  fclose(f);
  uint8_t *fit = realloc(data, n > 0 ? n : 1);
  if (fit != NULL) data = fit;
  out->data = data;
  out->len = n;
  out->name = strdup(path);
  return 0;
}

/* Adds path (a file, or a folder's regular files) to seeds. */
static int replay_add_seeds(const char *path, replay_buf *seeds, size_t *n) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (*n >= REPLAY_SEEDS_MAX) return 0;
    return replay_read_file(path, &seeds[(*n)++]);
  }
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  size_t first = *n;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && *n < REPLAY_SEEDS_MAX) {
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
    if (e->d_name[0] == '.' || stat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (replay_read_file(full, &seeds[(*n)++]) != 0) {
      closedir(d);
      return -1;
    }
  }
  closedir(d);
  qsort(seeds + first, *n - first, sizeof(*seeds), replay_cmp_names);
  return 0;
}

/* ---- mutations ---- */

/* Mutates buf[0..*len) in place (capacity cap) with one to four edits; other is a seed to splice
 * from. */
static void replay_mutate(uint8_t *buf, size_t *len, size_t cap, const replay_buf *other) {
  static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x7b};
  size_t edits = 1 + replay_below(4);
  for (size_t e = 0; e < edits; e++) {
    size_t n = *len;
    size_t at = n > 0 ? replay_below(n) : 0;
    switch (replay_below(8)) {
      case 0: /* flip a bit */
        if (n > 0) buf[at] ^= (uint8_t)(1u << replay_below(8));
        break;
      case 1: /* an interesting byte */
        if (n > 0) buf[at] = interesting[replay_below(sizeof(interesting))];
        break;
      case 2: /* a random byte */
        if (n > 0) buf[at] = (uint8_t)replay_rand();
        break;
      case 3: { /* insert random bytes */
        size_t k = 1 + replay_below(8);
        if (n + k > cap) break;
        memmove(buf + at + k, buf + at, n - at);
        for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)replay_rand();
        *len = n + k;
        break;
      }
      case 4: { /* erase a range */
        if (n == 0) break;
        size_t k = 1 + replay_below(n - at < 16 ? n - at : 16);
        memmove(buf + at, buf + at + k, n - at - k);
        *len = n - k;
        break;
      }
      case 5: { /* duplicate a range */
        if (n == 0) break;
        size_t k = 1 + replay_below(n - at < 32 ? n - at : 32);
        if (n + k > cap) break;
        memmove(buf + at + k, buf + at, n - at);
        *len = n + k;
        break;
      }
      case 6: /* truncate */
        *len = at;
        break;
      default: { /* splice: a range of the other seed over ours */
        if (other->len == 0) break;
        size_t from = replay_below(other->len);
        size_t k = 1 + replay_below(other->len - from);
        if (at + k > cap) k = cap - at;
        memcpy(buf + at, other->data + from, k);
        if (at + k > n) *len = at + k;
        break;
      }
    }
  }
}

/* ---- main ---- */

static int replay_usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--runs N] [--seed S] [--max-len L] [SEED_DIR_OR_FILE ...]\n", argv0);
  return 2;
}

int main(int argc, char **argv) {
  const char *base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
  size_t runs = REPLAY_RUNS_DEFAULT, max_len = REPLAY_MAX_LEN_DEFAULT;
  uint64_t seed = REPLAY_SEED_DEFAULT;
  replay_buf *seeds = calloc(REPLAY_SEEDS_MAX, sizeof(*seeds));
  size_t n_seeds = 0;
  if (seeds == NULL) abort();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 < argc && strcmp(a, "--runs") == 0) {
      runs = strtoull(argv[++i], NULL, 0);
    } else if (i + 1 < argc && strcmp(a, "--seed") == 0) {
      seed = strtoull(argv[++i], NULL, 0);
    } else if (i + 1 < argc && strcmp(a, "--max-len") == 0) {
      max_len = strtoull(argv[++i], NULL, 0);
    } else if (a[0] == '-') {
      return replay_usage(argv[0]);
    } else if (replay_add_seeds(a, seeds, &n_seeds) != 0) {
      return 2;
    }
  }
  replay_rng_state = seed != 0 ? seed : REPLAY_SEED_DEFAULT; /* xorshift never leaves 0 */
  snprintf(replay_crash_path, sizeof(replay_crash_path), "%s.crash", base);
  signal(SIGABRT, replay_on_signal); /* MIR_ASSERT */
  if (__sanitizer_set_death_callback != NULL) {
    __sanitizer_set_death_callback(replay_report); /* the sanitizer reports the fault itself */
  } else {
    signal(SIGSEGV, replay_on_signal);
    signal(SIGBUS, replay_on_signal);
    signal(SIGFPE, replay_on_signal);
  }
  if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);

  char what[512];
  for (size_t i = 0; i < n_seeds; i++) {
    snprintf(what, sizeof(what), "seed %s", seeds[i].name);
    replay_run(seeds[i].data, seeds[i].len, what);
  }
  size_t largest = 0;
  for (size_t i = 0; i < n_seeds; i++) largest = seeds[i].len > largest ? seeds[i].len : largest;
  size_t cap = (largest > max_len ? largest : max_len) + 64;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) abort();
  size_t n_random = 0, n_mutated = 0;
  for (size_t r = 0; r < runs; r++) {
    size_t len;
    if (n_seeds > 0 && r % 2 == 1) {
      const replay_buf *s = &seeds[replay_below(n_seeds)];
      memcpy(buf, s->data, s->len);
      len = s->len;
      replay_mutate(buf, &len, cap, &seeds[replay_below(n_seeds)]);
      snprintf(what, sizeof(what), "input %zu (a mutation of %s; --seed 0x%llx)", r, s->name,
               (unsigned long long)seed);
      n_mutated++;
    } else {
      len = replay_len(max_len);
      for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)replay_rand();
      snprintf(what, sizeof(what), "input %zu (random; --seed 0x%llx)", r,
               (unsigned long long)seed);
      n_random++;
    }
    replay_run(buf, len, what);
  }
  printf("%s: %zu inputs ok (%zu seeds, %zu mutated, %zu random)\n", base,
         n_seeds + n_mutated + n_random, n_seeds, n_mutated, n_random);
  free(buf);
  for (size_t i = 0; i < n_seeds; i++) {
    free(seeds[i].data);
    free(seeds[i].name);
  }
  free(seeds);
  return 0;
}
