/* SPDX-License-Identifier: MIT */
#include "routes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "device.h"
#include "gw/addr.h"
#include "gw/log.h"
#include "gw/nl.h"
#include "peer.h"

struct gwd_routes {
	struct gw_nl *nl;
	uint32_t table;
	bool closing;
	struct gwd_peer_queue queue;
	struct gw_timer timer;
	bool waiting; /* the timer waits GWD_ROUTES_RETRY_MS for refused routes */
	bool logged;  /* one warning per turn: refusals repeat every retry */
	int ifindex;  /* nonzero: instead of the TUN's (gwd_routes_set_ifindex) */
};

static void routes_tick(struct gw_loop *loop, struct gw_timer *t, void *arg);

int gwd_routes_enable(struct gwd_device *dev, uint32_t table)
{
	struct gwd_cluster *c = dev->cluster;
	struct gwd_routes *r;
	int err;

	if (!c || table == 0 || table == UINT32_MAX)
		return -EINVAL;
	if (c->routes)
		return -EBUSY;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = gw_nl_open(&r->nl);
	if (err) {
		free(r);
		return err;
	}
	r->table = table;
	gwd_peer_queue_init(&r->queue, GWD_QUEUE_ROUTES);
	gw_timer_init(&r->timer, routes_tick, dev);
	c->routes = r;
	return 0;
}

void gwd_routes_free(struct gwd_device *dev)
{
	struct gwd_routes *r = dev->cluster ? dev->cluster->routes : NULL;

	if (!r)
		return;
	gw_timer_cancel(dev->loop, &r->timer);
	gw_nl_close(r->nl);
	free(r);
	dev->cluster->routes = NULL;
}

void gwd_routes_closing(struct gwd_device *dev)
{
	if (dev->cluster && dev->cluster->routes)
		dev->cluster->routes->closing = true;
}

int gwd_routes_set_ifindex(struct gwd_device *dev, int ifindex)
{
	if (!dev->cluster || !dev->cluster->routes || ifindex < 0)
		return -EINVAL;
	dev->cluster->routes->ifindex = ifindex;
	return 0;
}

static int route_ifindex(const struct gwd_device *dev, const struct gwd_routes *r)
{
	return r->ifindex ? r->ifindex : gwd_device_tun_ifindex(dev);
}

void gwd_routes_mark(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (!c || !c->routes || c->routes->closing)
		return;
	gwd_peer_queue_push(&c->routes->queue, peer);
	/* Now, also when refused routes wait for their retry. */
	if (!gw_timer_pending(&c->routes->timer) || c->routes->waiting) {
		c->routes->waiting = false;
		(void)gw_timer_arm_in(peer->dev->loop, &c->routes->timer, 0);
	}
}

static bool has_prefix(const struct gwd_peer_routes *pr, const struct gw_prefix *p)
{
	for (uint32_t i = 0; i < pr->n; i++)
		if (gw_prefix_equal(&pr->v[i], p))
			return true;
	return false;
}

/* The route of p also belongs to another peer this node owns (an allowed IP moved). */
static bool held_by_other(const struct gwd_peer *peer, const struct gw_prefix *p)
{
	const struct gwd_peer *o = gwd_allowedips_lookup(&peer->dev->aips, p->family, p->addr);

	return o && o != peer && has_prefix(&o->cl.routes, p);
}

static void log_route(struct gwd_routes *r, const char *what, const struct gwd_peer *peer,
		      const struct gw_prefix *p, int err)
{
	char s[GW_PREFIX_STR_LEN];

	/* A TUN that is not up yet refuses IPv4 routes: retried quietly. */
	if (r->logged || err == -ENETDOWN)
		return;
	r->logged = true;
	gw_prefix_format(p, s, sizeof(s));
	gw_warn("gwd: peer %s: cannot %s the route to %s: %s (route_errors counts them all)",
		peer->name, what, s, strerror(-err));
}

static int find_prefix(void *arg, const struct gw_prefix *p)
{
	return gw_prefix_equal(p, arg);
}

/* Whether p is one of the peer's allowed IPs (exactly). */
static bool allowed(const struct gwd_peer *peer, const struct gw_prefix *p)
{
	return gwd_allowedips_for_each(&peer->aips, find_prefix, (void *)p) != 0;
}

/* Deletes the installed routes desired no more (all of them when !owned). */
static void withdraw(struct gwd_device *dev, struct gwd_routes *r, struct gwd_peer *peer,
		     bool owned, int ifindex)
{
	struct gwd_peer_routes *pr = &peer->cl.routes;

	for (uint32_t i = 0; i < pr->n;) {
		struct gw_prefix p = pr->v[i];
		int err = 0;

		if (owned && allowed(peer, &p)) {
			i++;
			continue;
		}
		pr->v[i] = pr->v[--pr->n];
		dev->cluster->stats.owned_routes--;
		if (ifindex > 0 && !r->closing && !held_by_other(peer, &p))
			err = gw_nl_route_del(r->nl, ifindex, &p, r->table);
		if (err && err != -ESRCH && err != -ENODEV) {
			dev->cluster->stats.route_errors++;
			log_route(r, "remove", peer, &p, err);
		}
	}
}

struct add_ctx {
	struct gwd_device *dev;
	struct gwd_routes *r;
	struct gwd_peer *peer;
	int ifindex;
	bool failed;
};

static int add_one(void *arg, const struct gw_prefix *p)
{
	struct add_ctx *a = arg;
	struct gwd_peer_routes *pr = &a->peer->cl.routes;
	int err;

	if (has_prefix(pr, p))
		return 0;
	if (pr->n == pr->cap) {
		uint32_t cap = pr->cap ? pr->cap * 2 : 2;
		struct gw_prefix *v = realloc(pr->v, cap * sizeof(*v));

		if (!v) {
			a->failed = true;
			return -ENOMEM;
		}
		pr->v = v;
		pr->cap = cap;
	}
	err = gw_nl_route_add(a->r->nl, a->ifindex, p, a->r->table);
	if (err && err != -EEXIST) {
		a->dev->cluster->stats.route_errors++;
		log_route(a->r, "add", a->peer, p, err);
		a->failed = true;
		return 0;
	}
	pr->v[pr->n++] = *p;
	a->dev->cluster->stats.owned_routes++;
	return 0;
}

/* Brings one peer's routes to what its ownership asks for; false: try again later. */
static bool sync_peer(struct gwd_device *dev, struct gwd_routes *r, struct gwd_peer *peer)
{
	int ifindex = route_ifindex(dev, r);
	bool owned = peer->linked && gwd_cluster_may_send(peer);
	struct add_ctx a = {dev, r, peer, ifindex, false};

	withdraw(dev, r, peer, owned, ifindex);
	if (!owned)
		return true;
	if (ifindex <= 0)
		return false;
	(void)gwd_allowedips_for_each(&peer->aips, add_one, &a);
	return !a.failed;
}

static void routes_tick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_device *dev = arg;
	struct gwd_routes *r = dev->cluster->routes;
	size_t n = r->queue.len < GWD_ROUTES_BATCH ? r->queue.len : GWD_ROUTES_BATCH;
	size_t failed = 0;

	(void)loop;
	(void)t;
	r->waiting = false;
	r->logged = false;
	/* At most the peers queued now: one that failed goes back to the tail for later. */
	while (n-- && r->queue.head) {
		struct gwd_peer *peer = r->queue.head;

		gwd_peer_queue_remove(&r->queue, peer);
		if (!sync_peer(dev, r, peer)) {
			gwd_peer_queue_push(&r->queue, peer);
			failed++;
		}
	}
	if (!r->queue.head)
		return;
	if (failed == r->queue.len) {
		r->waiting = true;
		(void)gw_timer_arm_in(dev->loop, &r->timer, GWD_MSEC_NS(GWD_ROUTES_RETRY_MS));
	} else {
		(void)gw_timer_arm_in(dev->loop, &r->timer, 0);
	}
}

void gwd_routes_peer_removed(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;
	struct gwd_peer_routes *pr = &peer->cl.routes;

	if (c && c->routes) {
		gwd_peer_queue_remove(&c->routes->queue, peer);
		withdraw(peer->dev, c->routes, peer, false, route_ifindex(peer->dev, c->routes));
	}
	free(pr->v);
	memset(pr, 0, sizeof(*pr));
}
