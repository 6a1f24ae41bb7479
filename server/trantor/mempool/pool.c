/*
 * The mempool's storage (pool.h).
 *
 * Every pending transaction is in exactly one list of its bucket (fresh or proposed) and in the
 * index, an AVL tree keyed by (client_id, tx_no). The index is a balanced tree rather than a hash
 * table because clients choose the keys: a tree costs O(log n) per operation whatever they pick,
 * and needs no secret hash seed. Fresh lists are in ascending seq (arrival) order; cuts take the
 * oldest fresh transaction across the requested buckets through a small binary heap.
 *
 * Invariants: n_txs = number of indexed transactions = sum of all list lengths; n_fresh = sum of
 * the fresh list lengths; bytes = sum of data lengths; tx->proposed iff tx is in a proposed list;
 * on_fresh is called for every change of a fresh list, so a listener can keep sums over buckets.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"

/* ---- lists ---- */

static void pool_list_append(trantor_pool_list *l, trantor_pool_tx *t) {
  t->prev = l->tail;
  t->next = NULL;
  if (l->tail != NULL) {
    l->tail->next = t;
  } else {
    l->head = t;
  }
  l->tail = t;
  l->n++;
  l->bytes += t->data.len;
}

/* Inserts t before `before` (NULL: at the end). */
static void pool_list_insert_before(trantor_pool_list *l, trantor_pool_tx *before,
                                    trantor_pool_tx *t) {
  if (before == NULL) {
    pool_list_append(l, t);
    return;
  }
  t->next = before;
  t->prev = before->prev;
  if (before->prev != NULL) {
    before->prev->next = t;
  } else {
    l->head = t;
  }
  before->prev = t;
  l->n++;
  l->bytes += t->data.len;
}

static void pool_list_unlink(trantor_pool_list *l, trantor_pool_tx *t) {
  if (t->prev != NULL) {
    t->prev->next = t->next;
  } else {
    l->head = t->next;
  }
  if (t->next != NULL) {
    t->next->prev = t->prev;
  } else {
    l->tail = t->prev;
  }
  t->prev = t->next = NULL;
  MIR_ASSERT(l->n > 0 && l->bytes >= t->data.len);
  l->n--;
  l->bytes -= t->data.len;
}

static trantor_pool_list *pool_list_of(trantor_pool *p, const trantor_pool_tx *t) {
  trantor_pool_bucket *b = &p->buckets[t->bucket];
  return t->proposed ? &b->proposed : &b->fresh;
}

static void pool_fresh_changed(trantor_pool *p, const trantor_pool_tx *t, bool added) {
  if (added) {
    p->n_fresh++;
  } else {
    p->n_fresh--;
  }
  if (p->on_fresh != NULL) p->on_fresh(p->user, t, added);
}

/* ---- index: AVL tree by (client_id, tx_no) ---- */

static int pool_cmp(const char *id, uint64_t no, const trantor_pool_tx *t) {
  int c = strcmp(id, t->client_id);
  if (c != 0) return c;
  return no < t->tx_no ? -1 : no > t->tx_no ? 1 : 0;
}

static int pool_h(const trantor_pool_tx *t) {
  return t != NULL ? t->height : 0;
}

static void pool_fix(trantor_pool_tx *t) {
  int l = pool_h(t->left), r = pool_h(t->right);
  t->height = 1 + (l > r ? l : r);
}

static trantor_pool_tx *pool_rot_right(trantor_pool_tx *y) {
  trantor_pool_tx *x = y->left;
  y->left = x->right;
  x->right = y;
  pool_fix(y);
  pool_fix(x);
  return x;
}

static trantor_pool_tx *pool_rot_left(trantor_pool_tx *x) {
  trantor_pool_tx *y = x->right;
  x->right = y->left;
  y->left = x;
  pool_fix(x);
  pool_fix(y);
  return y;
}

static trantor_pool_tx *pool_balance(trantor_pool_tx *t) {
  pool_fix(t);
  int bf = pool_h(t->left) - pool_h(t->right);
  if (bf > 1) {
    if (pool_h(t->left->left) < pool_h(t->left->right)) t->left = pool_rot_left(t->left);
    return pool_rot_right(t);
  }
  if (bf < -1) {
    if (pool_h(t->right->right) < pool_h(t->right->left)) t->right = pool_rot_right(t->right);
    return pool_rot_left(t);
  }
  return t;
}

/* Recursion depth is the tree height, below 1.45 log2(n + 2). */
static trantor_pool_tx *pool_index_insert(trantor_pool_tx *root, trantor_pool_tx *n) {
  if (root == NULL) {
    n->left = n->right = NULL;
    n->height = 1;
    return n;
  }
  int c = pool_cmp(n->client_id, n->tx_no, root);
  MIR_ASSERT(c != 0);
  if (c < 0) {
    root->left = pool_index_insert(root->left, n);
  } else {
    root->right = pool_index_insert(root->right, n);
  }
  return pool_balance(root);
}

static trantor_pool_tx *pool_index_remove_min(trantor_pool_tx *t, trantor_pool_tx **min) {
  if (t->left == NULL) {
    *min = t;
    return t->right;
  }
  t->left = pool_index_remove_min(t->left, min);
  return pool_balance(t);
}

/* Removes target, which is in the tree rooted at t. */
static trantor_pool_tx *pool_index_remove(trantor_pool_tx *t, const trantor_pool_tx *target) {
  MIR_ASSERT(t != NULL);
  int c = pool_cmp(target->client_id, target->tx_no, t);
  if (c < 0) {
    t->left = pool_index_remove(t->left, target);
  } else if (c > 0) {
    t->right = pool_index_remove(t->right, target);
  } else {
    if (t->left == NULL) return t->right;
    if (t->right == NULL) return t->left;
    trantor_pool_tx *m;
    trantor_pool_tx *right = pool_index_remove_min(t->right, &m);
    m->right = right;
    m->left = t->left;
    return pool_balance(m);
  }
  return pool_balance(t);
}

trantor_pool_tx *trantor_pool_find(const trantor_pool *p, const char *client_id, uint64_t tx_no) {
  trantor_pool_tx *t = p->root;
  while (t != NULL) {
    int c = pool_cmp(client_id, tx_no, t);
    if (c == 0) return t;
    t = c < 0 ? t->left : t->right;
  }
  return NULL;
}

/* ---- life cycle ---- */

void trantor_pool_init(trantor_pool *p, uint32_t num_buckets, trantor_pool_fresh_fn on_fresh,
                       void *user) {
  MIR_ASSERT(num_buckets >= 1);
  memset(p, 0, sizeof(*p));
  p->num_buckets = num_buckets;
  p->buckets = mir_xcalloc(num_buckets, sizeof(*p->buckets));
  p->on_fresh = on_fresh;
  p->user = user;
}

static void pool_tx_free(trantor_pool_tx *t) {
  free(t->client_id);
  free(t->data.data);
  free(t);
}

static void pool_list_free(trantor_pool_list *l) {
  trantor_pool_tx *t = l->head;
  while (t != NULL) {
    trantor_pool_tx *next = t->next;
    pool_tx_free(t);
    t = next;
  }
  memset(l, 0, sizeof(*l));
}

void trantor_pool_fini(trantor_pool *p) {
  if (p->buckets == NULL) return;
  for (uint32_t b = 0; b < p->num_buckets; b++) {
    pool_list_free(&p->buckets[b].fresh);
    pool_list_free(&p->buckets[b].proposed);
  }
  free(p->buckets);
  memset(p, 0, sizeof(*p));
}

trantor_pool_tx *trantor_pool_add(trantor_pool *p, const Trantor__Tx *tx, uint32_t bucket) {
  MIR_ASSERT(bucket < p->num_buckets);
  trantor_pool_tx *t = mir_xcalloc(1, sizeof(*t));
  t->client_id = mir_xstrdup(tx->client_id);
  t->tx_no = tx->tx_no;
  t->data.len = tx->data.len;
  t->data.data = mir_xmemdup(tx->data.data, tx->data.len);
  t->seq = p->next_seq++;
  t->bucket = bucket;
  p->root = pool_index_insert(p->root, t);
  pool_list_append(&p->buckets[bucket].fresh, t);
  p->n_txs++;
  p->bytes += t->data.len;
  pool_fresh_changed(p, t, true);
  return t;
}

void trantor_pool_remove(trantor_pool *p, trantor_pool_tx *t) {
  pool_list_unlink(pool_list_of(p, t), t);
  if (!t->proposed) pool_fresh_changed(p, t, false);
  p->root = pool_index_remove(p->root, t);
  p->n_txs--;
  p->bytes -= t->data.len;
  pool_tx_free(t);
}

/* ---- cutting ---- */

/* A min-heap of transactions by seq (the heads of the buckets' remaining fresh lists). */
typedef struct pool_heap {
  trantor_pool_tx **a;
  size_t n;
} pool_heap;

static void pool_heap_push(pool_heap *h, trantor_pool_tx *t) {
  size_t i = h->n++;
  while (i > 0 && h->a[(i - 1) / 2]->seq > t->seq) {
    h->a[i] = h->a[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->a[i] = t;
}

static trantor_pool_tx *pool_heap_pop(pool_heap *h) {
  trantor_pool_tx *top = h->a[0];
  trantor_pool_tx *last = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->a[c + 1]->seq < h->a[c]->seq) c++;
    if (h->a[c]->seq >= last->seq) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n > 0) h->a[i] = last;
  return top;
}

/* Returns an owned copy of t as a Tx message. */
static Trantor__Tx *pool_tx_copy(const trantor_pool_tx *t) {
  Trantor__Tx *tx = mir_xmalloc(sizeof(*tx));
  trantor__tx__init(tx);
  tx->client_id = mir_xstrdup(t->client_id);
  tx->tx_no = t->tx_no;
  tx->data.len = t->data.len;
  tx->data.data = mir_xmemdup(t->data.data, t->data.len);
  return tx;
}

/* Moves t from its fresh list to its proposed list, for epoch. */
static void pool_propose(trantor_pool *p, trantor_pool_tx *t, uint64_t epoch) {
  trantor_pool_bucket *b = &p->buckets[t->bucket];
  pool_list_unlink(&b->fresh, t);
  pool_fresh_changed(p, t, false);
  t->proposed = true;
  t->proposed_epoch = epoch;
  pool_list_append(&b->proposed, t);
}

void trantor_pool_cut(trantor_pool *p, const uint32_t *buckets, size_t n, uint64_t epoch,
                      size_t max_txs, uint64_t max_bytes, Trantor__Batch *out) {
  MIR_ASSERT(out->n_txs == 0);
  size_t avail = 0;
  for (size_t i = 0; i < n; i++) {
    MIR_ASSERT(buckets[i] < p->num_buckets);
    avail += p->buckets[buckets[i]].fresh.n;
  }
  if (avail == 0 || max_txs == 0) return;
  pool_heap h = {mir_xmalloc(n * sizeof(*h.a)), 0};
  for (size_t i = 0; i < n; i++) {
    trantor_pool_tx *head = p->buckets[buckets[i]].fresh.head;
    if (head != NULL) pool_heap_push(&h, head);
  }
  size_t cap = avail < max_txs ? avail : max_txs;
  out->txs = mir_xmalloc(cap * sizeof(*out->txs));
  uint64_t bytes = 0;
  size_t skipped = 0;
  while (h.n > 0 && out->n_txs < cap && bytes < max_bytes) {
    trantor_pool_tx *t = pool_heap_pop(&h);
    if (t->next != NULL) pool_heap_push(&h, t->next); /* before t leaves the list */
    if (t->data.len > max_bytes - bytes) {
      if (++skipped > TRANTOR_POOL_SKIP_MAX) break;
      continue;
    }
    out->txs[out->n_txs++] = pool_tx_copy(t);
    bytes += t->data.len;
    pool_propose(p, t, epoch);
  }
  free(h.a);
}

/* ---- new epochs and bulk removal ---- */

static int pool_seq_cmp(const void *a, const void *b) {
  const trantor_pool_tx *x = *(trantor_pool_tx *const *)a, *y = *(trantor_pool_tx *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Moves the proposed transactions of b with proposed_epoch < epoch back into the fresh list,
 * keeping it in seq order; tmp has room for all of b's proposed ones. */
static size_t pool_reopen_bucket(trantor_pool *p, trantor_pool_bucket *b, uint64_t epoch,
                                 trantor_pool_tx **tmp) {
  size_t k = 0;
  trantor_pool_tx *t = b->proposed.head;
  while (t != NULL) {
    trantor_pool_tx *next = t->next;
    if (t->proposed_epoch < epoch) {
      pool_list_unlink(&b->proposed, t);
      t->proposed = false;
      tmp[k++] = t;
    }
    t = next;
  }
  qsort(tmp, k, sizeof(*tmp), pool_seq_cmp);
  trantor_pool_tx *at = b->fresh.head;
  for (size_t i = 0; i < k; i++) {
    while (at != NULL && at->seq < tmp[i]->seq) at = at->next;
    pool_list_insert_before(&b->fresh, at, tmp[i]);
    pool_fresh_changed(p, tmp[i], true);
  }
  return k;
}

size_t trantor_pool_reopen(trantor_pool *p, uint64_t epoch) {
  size_t most = 0;
  for (uint32_t i = 0; i < p->num_buckets; i++) {
    if (p->buckets[i].proposed.n > most) most = p->buckets[i].proposed.n;
  }
  if (most == 0) return 0;
  trantor_pool_tx **tmp = mir_xmalloc(most * sizeof(*tmp));
  size_t moved = 0;
  for (uint32_t i = 0; i < p->num_buckets; i++) {
    if (p->buckets[i].proposed.n > 0) moved += pool_reopen_bucket(p, &p->buckets[i], epoch, tmp);
  }
  free(tmp);
  return moved;
}

static size_t pool_remove_list_if(trantor_pool *p, trantor_pool_list *l,
                                  bool (*pred)(void *user, const trantor_pool_tx *tx), void *user) {
  size_t removed = 0;
  trantor_pool_tx *t = l->head;
  while (t != NULL) {
    trantor_pool_tx *next = t->next;
    if (pred(user, t)) {
      trantor_pool_remove(p, t);
      removed++;
    }
    t = next;
  }
  return removed;
}

size_t trantor_pool_remove_if(trantor_pool *p, bool (*pred)(void *user, const trantor_pool_tx *tx),
                              void *user) {
  size_t removed = 0;
  for (uint32_t i = 0; i < p->num_buckets; i++) {
    removed += pool_remove_list_if(p, &p->buckets[i].fresh, pred, user);
    removed += pool_remove_list_if(p, &p->buckets[i].proposed, pred, user);
  }
  return removed;
}
