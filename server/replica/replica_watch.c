/*
 * What a replica says about itself (replica_internal.h): view changes, peers, a status line.
 *
 * View changes are seen by an interceptor on the node: a PBFT instance that starts a view change
 * sends a trantor.SignedViewChange, the new primary sends a trantor.NewView, and every node
 * receives that NewView. Resends repeat the same (instance, view), so the last few are
 * remembered and each is logged once. The interceptor runs on the dispatcher and looks only at
 * the type name of each message in the transport's and the ordering factory's batches: it unpacks
 * a message only for those rare types.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/log.h"
#include "replica_internal.h"

enum { REP_VC = 1, REP_NV_SENT = 2, REP_NV_RECEIVED = 3 };

/* True the first time (module, kind, view) is seen. */
static bool rep_first_time(mir_replica *r, const char *module, int kind, uint64_t view) {
  for (size_t i = 0; i < REP_SEEN_MAX; i++) {
    const rep_seen *s = &r->seen[i];
    if (s->kind == kind && s->view == view && strcmp(s->module, module) == 0) return false;
  }
  rep_seen *s = &r->seen[r->seen_next];
  r->seen_next = (r->seen_next + 1) % REP_SEEN_MAX;
  snprintf(s->module, sizeof(s->module), "%s", module);
  s->kind = kind;
  s->view = view;
  return true;
}

/* The view a SignedViewChange or NewView message (packed, borrowed) is about. */
static bool rep_view_of(const Mir__PackedMessage *pm, bool new_view, uint64_t *view) {
  ProtobufCMessage *msg = NULL;
  if (mir_message_unpack(pm, 0, &msg) != MIR_OK) return false;
  bool ok = true;
  if (new_view) {
    *view = ((Trantor__NewView *)msg)->view;
  } else {
    const Trantor__SignedViewChange *svc = (const Trantor__SignedViewChange *)msg;
    ok = svc->view_change != NULL;
    if (ok) *view = svc->view_change->view;
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  return ok;
}

static void rep_watch_event(mir_replica *r, const mir_event *ev) {
  const Mir__PackedMessage *pm = NULL;
  const char *module = ev->dest, *from = NULL;
  if (mir_event_is(ev, &mir__send_message__descriptor)) {
    pm = ((const Mir__SendMessage *)ev->payload)->msg;
    module = ev->src;
  } else if (mir_event_is(ev, &mir__message_received__descriptor)) {
    pm = ((const Mir__MessageReceived *)ev->payload)->msg;
    from = ((const Mir__MessageReceived *)ev->payload)->from;
  }
  if (pm == NULL || pm->type == NULL || strncmp(module, "ordering/", 9) != 0) return;
  bool vc = strcmp(pm->type, "trantor.SignedViewChange") == 0 && from == NULL;
  bool nv = strcmp(pm->type, "trantor.NewView") == 0;
  uint64_t view = 0;
  /* The new primary's NewView to itself was logged when it was sent. */
  if (nv && from != NULL && strcmp(from, r->cfg->id) == 0) return;
  if ((!vc && !nv) || !rep_view_of(pm, nv, &view)) return;
  int kind = vc ? REP_VC : (from == NULL ? REP_NV_SENT : REP_NV_RECEIVED);
  if (!rep_first_time(r, module, kind, view)) return;
  if (kind == REP_VC) {
    mir_log(MIR_LOG_INFO, REP_LOG, "%s: view change: %s moves to view %" PRIu64, r->cfg->id, module,
            view);
  } else if (kind == REP_NV_SENT) {
    mir_log(MIR_LOG_INFO, REP_LOG, "%s: view change: %s starts view %" PRIu64 " as its primary",
            r->cfg->id, module, view);
  } else {
    mir_log(MIR_LOG_INFO, REP_LOG,
            "%s: view change: %s received the new view %" PRIu64 " from %.64s", r->cfg->id, module,
            view, from);
  }
}

static mir_err rep_intercept(void *user, const char *node_id, const char *module_id,
                             const mir_event_list *batch) {
  (void)node_id;
  mir_replica *r = user;
  if (strcmp(module_id, "net") != 0 && strcmp(module_id, "ordering") != 0) return MIR_OK;
  MIR_EVENT_LIST_FOREACH(batch, ev) rep_watch_event(r, ev);
  return MIR_OK;
}

void miri_rep_watch_install(mir_replica *r) {
  mir_interceptor ic = {.intercept = rep_intercept, .user_data = r};
  mir_node_set_interceptor(r->node, &ic);
}

size_t miri_rep_peers(void *user, mir_client_peer *out, size_t cap) {
  mir_replica *r = user;
  size_t n = 0;
  for (size_t i = 0; i < r->m->n && n < cap; i++) {
    const char *id = r->m->replicas[i].id;
    if (strcmp(id, r->cfg->id) == 0) continue;
    bool up = mir_metrics_read(mir_net_grpc_metrics(r->net), "mir_net_connected", id) > 0;
    snprintf(out[n].id, sizeof(out[n].id), "%s", id);
    out[n++].connected = up;
  }
  return n;
}

void miri_rep_watch_peers(mir_replica *r) {
  if (r->peer_up == NULL) r->peer_up = mir_xcalloc(r->m->n, sizeof(*r->peer_up));
  for (size_t i = 0; i < r->m->n; i++) {
    const char *id = r->m->replicas[i].id;
    if (strcmp(id, r->cfg->id) == 0) continue;
    bool up = mir_metrics_read(mir_net_grpc_metrics(r->net), "mir_net_connected", id) > 0;
    if (up != r->peer_up[i]) {
      mir_log(MIR_LOG_INFO, REP_LOG, "%s: peer %s %s (%s)", r->cfg->id, id,
              up ? "connected" : "disconnected", r->m->replicas[i].address);
      r->peer_up[i] = up;
    }
  }
}

void miri_rep_log_status(mir_replica *r) {
  mir_olog_status st;
  mir_olog_get_status(r->log, &st);
  const mir_metrics *cs = mir_client_service_metrics(r->client);
  int64_t accepted = mir_metrics_read(cs, "mir_client_transactions_accepted_total", NULL);
  int64_t refused = mir_metrics_read(cs, "mir_client_transactions_refused_total", NULL);
  int64_t subscribers = mir_metrics_read(cs, "mir_client_subscribers", NULL);
  size_t up = 0;
  for (size_t i = 0; r->peer_up != NULL && i < r->m->n; i++) up += r->peer_up[i];
  char hash[17];
  for (int i = 0; i < 8; i++) snprintf(hash + 2 * i, 3, "%02x", st.log_hash[i]);
  mir_log(MIR_LOG_INFO, REP_LOG,
          "%s: epoch %" PRIu64 ", next sn %" PRIu64
          ", log hash %s..., peers %zu/%zu, "
          "txs accepted %" PRId64 " refused %" PRId64 ", subscribers %" PRId64,
          r->cfg->id, st.epoch, st.next_sn, hash, up, r->m->n - 1, accepted, refused, subscribers);
}
