#!/usr/bin/env python3
"""lab_report.py - the report and the picture of `scripts/lab demo`.

Reads the figures of each measured failover (phase.json, written by
scripts/lab: per client the longest ping gap, handshake initiations from the
capture, TCP bytes; per node its role and sessions) and the ping logs they
name (`ping -D`: one "[EPOCH] 64 bytes from ..." line per reply), and writes
to --out:

  report.json   every figure, machine-readable (tests assert on it)
  report.txt    the same for people (also printed by scripts/lab)
  failover.svg  per client, a tick for every ping reply around the kill,
                gwcluster above the status quo on one time scale, and the
                gwcluster failover zoomed in

Standard library only; the SVG is written by hand.
"""
import argparse
import datetime
import json
import os
import re
import sys
from xml.sax.saxutils import escape

HITLESS_GAP_MS = 500
# A run of missing replies at least this long is drawn as a gap.
GAP_DRAW_MS = 100

LABELS = {
    "gwcluster": ("gwcluster", "gwd + syncd + keepalived, sessions replicated"),
    "wggo": ("status quo", "wireguard-go + keepalived, no session sync"),
}
KEYS = {"gwcluster": "gwcluster", "wggo": "status_quo"}

PING_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=")


def ping_replies(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                m = PING_RE.match(line)
                if m:
                    out.append(float(m.group(1)))
    except OSError:
        pass
    return out


def fmt_ms(v):
    if v is None:
        return "none"
    if v >= 10000:
        return "{:,.0f} ms".format(v).replace(",", " ")
    return "%.0f ms" % v


def fmt_mb(b):
    return "%.1f" % (b / 1e6)


def clock(t):
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


# ---------------------------------------------------------------- text

def table(rows, align):
    """Rows of strings as aligned columns ("l" or "r" per column), indented."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w[i]) if align[i] == "l" else c.rjust(w[i]) for i, c in enumerate(r)]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def phase_text(ph):
    name, what = LABELS[ph["impl"]]
    lines = ["%s (%s)" % (name, what)]
    vrrp = ph.get("vrrp_master_ms")
    lines.append("  SIGKILL of %s (every process of the node) at %s; %s took over the VIP after %s"
                 % (ph["killed"], clock(ph["t_kill"]), ph["new_master"],
                    "?" if vrrp is None else "%.0f ms (its first VRRP advert)" % vrrp))
    lines.append("  %s back and %s after %.1f s"
                 % (ph["killed"], "resynced, ready to take over" if ph["impl"] == "gwcluster"
                    else "running", ph["rejoin_s"]))
    lines.append("")
    rows = [("client", "implementation", "longest gap", "initiations client/gw",
             "first packet", "same keys", "TCP: MB moved (after the kill)")]
    for c in ph["clients"]:
        tcp = c["tcp"]
        if tcp == "ok":
            tcp = "%s (%s)" % (fmt_mb(c["bytes"]), fmt_mb(c["bytes_after_kill"]))
        same = {True: "yes", False: "no", None: "-"}[c["same_keypair"]]
        first = "-" if c["first_packet_ms"] is None else fmt_ms(c["first_packet_ms"])
        rows.append((c["name"], c["impl"], fmt_ms(c["longest_gap_ms"]),
                     "%d / %d" % (c["client_initiations"], c["gateway_initiations"]),
                     first, same, tcp))
    lines += table(rows, "llrrrll")
    lines.append("")
    rows = [("node", "keepalived", "role", "ready", "sessions owned", "standby")]
    for n in ph["nodes"]:
        ready = n["ready"]
        ready = "-" if ready is None else ("yes" if ready == 0 else "no (%s)" % ready)
        rows.append((n["name"], n["keepalived"], n["role"] or "-", ready,
                     "-" if n["sessions_owned"] is None else str(n["sessions_owned"]),
                     "-" if n["sessions_standby"] is None else str(n["sessions_standby"])))
    lines += table(rows, "llllrr")
    lines.append("  (receiver, counter) pairs the gateways sent twice: %d"
                 % sum(c["repeated_nonces"] for c in ph["clients"]))
    return lines


def verdict(ph):
    bad = []
    for c in ph["clients"]:
        g = c["longest_gap_ms"]
        if g is None or g >= HITLESS_GAP_MS:
            bad.append("%s: gap %s" % (c["name"], fmt_ms(g)))
        if c["client_initiations"]:
            bad.append("%s: %d handshake initiation(s)" % (c["name"], c["client_initiations"]))
        if c["tcp"] != "ok" or c["bytes_after_kill"] <= 0:
            bad.append("%s: TCP %s" % (c["name"], c["tcp"]))
    return bad


def report_text(rep, svg, js):
    lab = rep["lab"]
    out = ["gwcluster lab %s: %d gateways behind the VIP 192.0.2.100 (keepalived advert_int %s s),"
           " %d clients" % (lab["id"], lab["nodes"], lab["advert_int"], lab["clients"]),
           "traffic per client: a ping every %d ms and an iperf3 TCP stream at %s bit/s, through"
           " the tunnel to the LAN host 198.19.0.2" % (lab["ping_ms"], lab["rate"]),
           "machine: %s" % lab["machine"], ""]
    for key in ("gwcluster", "status_quo"):
        ph = rep.get(key)
        if ph:
            out += phase_text(ph) + [""]
    gc, sq = rep.get("gwcluster"), rep.get("status_quo")
    bad = verdict(gc)
    if bad:
        out.append("gwcluster was NOT hitless: " + "; ".join(bad))
    else:
        out.append("gwcluster was hitless for every client: every gap under %d ms, no client"
                   " handshake, every TCP stream carried on" % HITLESS_GAP_MS)
    s = rep["summary"]
    if sq:
        out.append("longest gap: gwcluster %s, status quo %s%s; client handshake initiations:"
                   " gwcluster %d, status quo %d"
                   % (fmt_ms(s["gwcluster_max_gap_ms"]), fmt_ms(s["status_quo_max_gap_ms"]),
                      " (%.0fx)" % s["gap_ratio"] if s["gap_ratio"] else "",
                      s["gwcluster_client_initiations"], s["status_quo_client_initiations"]))
    out.append("(initiations: handshake initiations the client and the gateways sent in the"
               " failover window, from a capture on the router; the gateways' are gwd's takeover"
               " rekeys, which traffic does not wait for. first packet: from the kill to the new"
               " master's first data packet to the client. same keys: that packet used the"
               " receiver index the old master used, i.e. the replicated session)")
    out.append("picture: %s" % svg)
    out.append("figures: %s" % js)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- svg

class Svg:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.items = []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", color="#222", weight="normal"):
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s" '
                 'font-weight="%s">%s</text>' % (x, y, size, anchor, color, weight, escape(s)))

    def line(self, x1, y1, x2, y2, color="#222", width=1, dash=None):
        self.add('<line x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="%s" stroke-width="%s"%s/>'
                 % (x1, y1, x2, y2, color, width,
                    ' stroke-dasharray="%s"' % dash if dash else ""))

    def rect(self, x, y, w, h, fill, opacity=1.0, stroke="none"):
        self.add('<rect x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="%s" '
                 'fill-opacity="%.2f" stroke="%s"/>' % (x, y, max(w, 0.5), h, fill, opacity,
                                                          stroke))

    def path(self, d, color, width=1):
        self.add('<path d="%s" stroke="%s" stroke-width="%s" fill="none"/>' % (d, color, width))

    def write(self, path):
        with open(path, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                    'viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
                    % (self.w, self.h, self.w, self.h))
            f.write('<rect width="100%" height="100%" fill="white"/>\n')
            for it in self.items:
                f.write(it + "\n")
            f.write("</svg>\n")


def gaps_of(ts, lo, hi, min_ms):
    """Intervals between consecutive replies longer than min_ms that overlap
    [lo, hi] (times relative to the kill)."""
    out = []
    for a, b in zip(ts, ts[1:]):
        if (b - a) * 1000 >= min_ms and b >= lo and a <= hi:
            out.append((a, b))
    return out


def panel(svg, y0, ph, x0, width, lo, hi, tick, title, row_h=22, zoom=False):
    """One phase: a row per client, a tick per reply in [lo, hi] (seconds
    relative to the kill). Returns the y below the panel."""
    name, what = LABELS[ph["impl"]]
    scale = width / (hi - lo)
    X = lambda t: x0 + (t - lo) * scale
    svg.text(x0, y0 + 14, title, size=14, weight="bold")
    top = y0 + 38
    n = len(ph["clients"])
    bottom = top + n * row_h
    svg.rect(x0, top, width, bottom - top, "#f6f8fa", stroke="#ccc")
    # time axis
    t = (int(lo / tick) - 1) * tick
    while t <= hi + 1e-9:
        if t >= lo - 1e-9:
            x = X(t)
            svg.line(x, top, x, bottom, "#e3e6ea")
            svg.line(x, bottom, x, bottom + 4, "#666")
            lab = ("%+.1f" % t if tick < 1 else "%+d" % round(t)) if abs(t) > 1e-9 else "0"
            svg.text(x, bottom + 16, lab, size=10, anchor="middle", color="#555")
        t += tick
    svg.text(x0 + width, bottom + 30, "seconds after the SIGKILL", size=10, anchor="end",
             color="#555")
    tk = ph["t_kill"]
    marks = [(0.0, "#c0392b", "SIGKILL " + ph["killed"])]
    if ph.get("vrrp_master_ms") is not None:
        marks.append((ph["vrrp_master_ms"] / 1000, "#e67e22", ph["new_master"] + " VRRP master"))
    if not zoom:
        marks.append((ph["t_back"] - tk, "#27ae60", ph["killed"] + " back"))
    for i, (mt, col, lab) in enumerate(marks):
        if lo <= mt <= hi:
            svg.line(X(mt), top - 4, X(mt), bottom, col, 1.5, "5,3")
            # The kill's label left of its line, the others right of theirs.
            if i == 0:
                svg.text(X(mt) - 3, top - 6, lab, size=10, color=col, anchor="end")
            else:
                svg.text(X(mt) + 3, top - 6, lab, size=10, color=col)
    for r, c in enumerate(ph["clients"]):
        yr = top + r * row_h
        svg.text(x0 - 8, yr + row_h * 0.68, "%s %s" % (c["name"], c["impl"]), size=11,
                 anchor="end")
        ts = [t - tk for t in c["replies"]]
        d = []
        for t in ts:
            if lo <= t <= hi:
                x = X(t)
                d.append("M%.2f %.1fv%.1f" % (x, yr + 4, row_h - 8))
        if d:
            svg.path("".join(d), "#2c7fb8" if ph["impl"] == "gwcluster" else "#6a51a3", 1)
        gaps = gaps_of(ts, lo, hi, GAP_DRAW_MS)
        longest = max((b - a for a, b in gaps), default=0)
        for a, b in gaps:
            xa, xb = X(max(a, lo)), X(min(b, hi))
            svg.rect(xa, yr + 2, xb - xa, row_h - 4, "#e74c3c", 0.25)
            ms = (b - a) * 1000
            # Only the row's longest gap and long ones get a label: short
            # ones (a loaded machine delays a few replies) would crowd it.
            if b - a < longest and ms < 1000:
                continue
            label = fmt_ms(ms)
            tw = 6.2 * len(label) + 6
            if xb - xa < tw + 4:
                # Beside a narrow gap, on a white patch over the ticks.
                svg.rect(xb + 1, yr + 4, tw, row_h - 8, "white", 0.9)
                svg.text(xb + 4, yr + row_h * 0.68, label, size=10, color="#c0392b",
                         weight="bold")
            else:
                svg.text((xa + xb) / 2, yr + row_h * 0.68, label, size=10, color="#c0392b",
                         anchor="middle", weight="bold")
    svg.text(x0, bottom + 30, "%s: %s; a tick is a ping reply, red: no reply" % (name, what),
             size=10, color="#555")
    return bottom + 44


def draw(rep, path):
    phases = [rep[k] for k in ("gwcluster", "status_quo") if rep.get(k)]
    n = max(len(p["clients"]) for p in phases)
    lo = -2.0
    hi = 3.0
    for p in phases:
        hi = max(hi, p["t_end"] - p["t_kill"] + 1, p["t_back"] - p["t_kill"] + 1.5)
    hi = float(int(hi) + 1)
    x0, width = 170, 800
    row_h = 22
    per_panel = 38 + n * row_h + 44 + 10
    h = 60 + per_panel * (len(phases) + 1) + 20
    svg = Svg(x0 + width + 30, h)
    lab = rep["lab"]
    svg.text(x0 + width / 2, 24, "Failover of the VRRP master: ping replies of every client",
             size=16, anchor="middle", weight="bold")
    svg.text(x0 + width / 2, 42, "lab %s, %d gateways, ping every %d ms through the tunnel"
             " with an iperf3 stream per client; SIGKILL of gwd, syncd and keepalived"
             % (lab["id"], lab["nodes"], lab["ping_ms"]), size=11, anchor="middle",
             color="#555")
    y = 56
    for p in phases:
        name, _ = LABELS[p["impl"]]
        worst = max((c["longest_gap_ms"] or 0) for c in p["clients"])
        y = panel(svg, y, p, x0, width, lo, hi, 1.0,
                  "%s: longest gap %s" % (name, fmt_ms(worst)), row_h) + 10
    gc = rep["gwcluster"]
    zhi = max(1.0, min(2.0, gc["t_end"] - gc["t_kill"]))
    panel(svg, y, gc, x0, width, -0.5, zhi, 0.1,
          "gwcluster zoomed in: each tick is one reply (every %d ms)" % lab["ping_ms"], row_h,
          zoom=True)
    svg.write(path)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", action="append", required=True, help="a phase.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lab", required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--advert", required=True)
    ap.add_argument("--ping-ms", type=int, required=True)
    ap.add_argument("--rate", required=True)
    ap.add_argument("--machine", default="")
    a = ap.parse_args()

    rep = {"lab": {"id": a.lab, "nodes": a.nodes, "advert_int": float(a.advert),
                   "ping_ms": a.ping_ms, "rate": a.rate, "machine": a.machine,
                   "generated": datetime.datetime.now().astimezone().isoformat(
                       timespec="seconds")},
           "gwcluster": None, "status_quo": None}
    replies = {}
    for path in a.phase:
        with open(path) as f:
            ph = json.load(f)
        key = KEYS[ph["impl"]]
        for c in ph["clients"]:
            replies[(key, c["name"])] = ping_replies(c["ping_log"])
        rep[key] = ph
    if not rep["gwcluster"]:
        print("lab_report.py: no gwcluster phase", file=sys.stderr)
        return 1
    rep["lab"]["clients"] = len(rep["gwcluster"]["clients"])

    def worst(ph):
        if not ph:
            return None
        g = [c["longest_gap_ms"] for c in ph["clients"]]
        return None if None in g else max(g)

    gc, sq = rep["gwcluster"], rep["status_quo"]
    gw, sw = worst(gc), worst(sq)
    rep["summary"] = {
        "gwcluster_max_gap_ms": gw,
        "status_quo_max_gap_ms": sw,
        "gap_ratio": round(sw / gw, 1) if gw and sw else None,
        "gwcluster_client_initiations": sum(c["client_initiations"] for c in gc["clients"]),
        "status_quo_client_initiations":
            sum(c["client_initiations"] for c in sq["clients"]) if sq else None,
        "gwcluster_hitless": not verdict(gc),
        "gwcluster_problems": verdict(gc),
    }
    os.makedirs(a.out, exist_ok=True)
    svg_path = os.path.join(a.out, "failover.svg")
    js_path = os.path.join(a.out, "report.json")
    rep["svg"] = svg_path
    # The drawing needs the replies; the JSON keeps only the figures.
    for key in ("gwcluster", "status_quo"):
        if rep[key]:
            for c in rep[key]["clients"]:
                c["replies"] = replies[(key, c["name"])]
                c["replies_count"] = len(c["replies"])
    draw(rep, svg_path)
    for key in ("gwcluster", "status_quo"):
        if rep[key]:
            for c in rep[key]["clients"]:
                del c["replies"]
    with open(js_path + ".tmp", "w") as f:
        json.dump(rep, f, indent=1)
        f.write("\n")
    os.replace(js_path + ".tmp", js_path)
    with open(os.path.join(a.out, "report.txt"), "w") as f:
        f.write(report_text(rep, svg_path, js_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
