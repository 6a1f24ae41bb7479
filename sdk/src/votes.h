/*
 * The agreement table (internal, pure: no locks, no I/O, no clock). Replicas vote for the content
 * of sequence numbers; an entry is agreed, and handed out in sn order exactly once, when `quorum`
 * distinct replicas voted byte-identical content for it. A vote is the canonical encoding of a
 * Delivery (wire.h), so it covers (sn, epoch, log_hash, transactions) at once.
 *
 * Limits: only sequence numbers in [frontier, frontier + window) are kept; each replica may hold
 * at most bytes_max bytes of votes (plus the one message that crossed the mark), and at most one
 * vote per sequence number (a second, different vote is an equivocation and is ignored).
 * Identical votes share one copy of the content.
 */
#ifndef MIRI_CL_VOTES_H
#define MIRI_CL_VOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRI_CL_VOTERS_MAX 64

/* Shared, reference-counted content of one candidate. */
typedef struct miri_cl_blob {
  uint32_t refs;
  uint64_t hash;
  size_t len;
  uint8_t data[];
} miri_cl_blob;

/* Drops one reference (blob may be NULL); frees the blob at zero. */
void miri_cl_blob_unref(miri_cl_blob *blob);

typedef struct miri_cl_cand {
  miri_cl_blob *blob;
  uint64_t voters; /* bit r: replica r voted this content */
} miri_cl_cand;

typedef struct miri_cl_slot {
  uint64_t sn;
  uint64_t voted; /* replicas that voted at sn (any content) */
  uint32_t n_cands;
  miri_cl_cand *cands; /* n_voters entries */
} miri_cl_slot;

typedef struct miri_cl_voter {
  uint64_t last_sn; /* highest sn voted, or UINT64_MAX for none */
  uint64_t bytes;   /* bytes of its votes still in the table */
} miri_cl_voter;

typedef struct miri_cl_votes {
  uint32_t n_voters, quorum, window;
  uint64_t bytes_max;
  uint64_t frontier; /* the next sn to agree on */
  uint64_t max_seen; /* highest sn any vote named (or frontier - 1 with UINT64_MAX meaning none) */
  bool seen_any;
  uint64_t dissent;    /* votes that differed from the content agreed at their sn */
  miri_cl_slot *slots; /* window slots, slot of sn = sn % window */
  uint64_t *decided;   /* hash of the content agreed at sn, at sn % window, for the last window
                          sns below the frontier (to count late dissenting votes) */
  miri_cl_voter voters[MIRI_CL_VOTERS_MAX];
} miri_cl_votes;

typedef enum miri_cl_vote_result {
  MIRI_CL_VOTE_ADDED = 0, /* counted */
  MIRI_CL_VOTE_REPEATED,  /* the replica already voted this content here (a reconnect) */
  MIRI_CL_VOTE_CONFLICT,  /* the replica already voted other content at sn: ignored */
  MIRI_CL_VOTE_DECIDED,   /* sn < frontier: already agreed, ignored (counted in dissent if
                             it differs from the agreed content) */
  MIRI_CL_VOTE_AHEAD,     /* sn >= frontier + window: not kept */
  MIRI_CL_VOTE_NOMEM
} miri_cl_vote_result;

/* Prepares v for n_voters (1..64) replicas, agreement by quorum (1..n_voters) identical votes,
 * starting at from_sn. Returns 0, or -1 when out of memory (v is then empty but safe to fini). */
int miri_cl_votes_init(miri_cl_votes *v, uint32_t n_voters, uint32_t quorum, uint32_t window,
                       uint64_t bytes_max, uint64_t from_sn);
void miri_cl_votes_fini(miri_cl_votes *v);

/* Records that voter (< n_voters) delivered data (borrowed, len bytes, copied if new) at sn. */
miri_cl_vote_result miri_cl_votes_add(miri_cl_votes *v, uint32_t voter, uint64_t sn,
                                      const uint8_t *data, size_t len);

/* If the entry at the frontier is agreed: advances the frontier, releases that sn's votes (those
 * for other content are added to `dissent`) and returns its content (returns owned: free with
 * miri_cl_blob_unref). NULL otherwise. */
miri_cl_blob *miri_cl_votes_pop(miri_cl_votes *v);

/* May voter's next message be read? False while its votes hold bytes_max bytes or its next sn
 * would fall beyond the window: the caller then stops reading from it (flow control). */
bool miri_cl_votes_room(const miri_cl_votes *v, uint32_t voter);

/* The sn from which voter's stream should resume: past its last vote, never below the frontier. */
uint64_t miri_cl_votes_resume_sn(const miri_cl_votes *v, uint32_t voter);

/* True when some replica voted at or beyond the frontier (so a lack of progress is a stall). */
bool miri_cl_votes_waiting(const miri_cl_votes *v);

#endif
