#!/usr/bin/python3
"""A loopback DHT (BEP 5) of libtorrent 2.0 sessions for tests: N plain DHT nodes bootstrapped
to each other on 127.0.0.1, optionally a seeder that announces one torrent into it, a leecher
that downloads from a bare magnet link with peers from the DHT only, and repeated get_peers
lookups for given info-hashes. Everything binds to 127.0.0.1; no trackers, LSD, UPnP or NAT-PMP.

Lines printed (stdout), for the TypeScript side to wait on:
  NODE <port>               one line a plain DHT node (UDP port; its TCP port is the same)
  SEEDER <port>             the seeder seeds and a plain node's get_peers finds it there
  LEECHER <port>            the leecher session is up and looking for peers
  READY <ports,...>         every plain node has at least one other node in its routing table
  PEERS <hex> <ip:port>     a --lookup found this peer (each peer printed once)
  DONE <seconds>            the leecher completed (time from add_torrent)
  TIMEOUT ...               --timeout passed: exit 2 if a leecher is unfinished, else 0
Error alerts go to stderr as `ALERT <type>: <message>`; they never stop it.
"""

import argparse
import sys
import time
import warnings

import libtorrent as lt

# libtorrent announces a new torrent soon after start, but only if its DHT already has nodes;
# forcing an announce this often until a lookup finds the seeder closes that gap.
ANNOUNCE_EVERY_SEC = 2.0
LOOKUP_EVERY_SEC = 2.0
FLUSH_WAIT_SEC = 10.0


def main():
    args = parse_args()
    bootstrap = [parse_endpoint(text) for text in args.bootstrap]
    nodes = [lt.session(settings()) for _ in range(args.nodes)]
    node_ports = [node.listen_port() for node in nodes]
    for port in node_ports:
        print("NODE", port, flush=True)
    seeder = start_seeder(args) if args.seed_torrent else None
    leecher = lt.session(settings()) if args.leech_magnet else None
    sessions = nodes + [s for s in (seeder and seeder[0], leecher) if s]
    # Every session knows every plain node (and the caller's bootstrap nodes), so the DHT is
    # connected from the first second whatever order the pings arrive in.
    known = [("127.0.0.1", port) for port in node_ports] + bootstrap
    for session in sessions:
        own = session.listen_port()
        for endpoint in known:
            if endpoint != ("127.0.0.1", own):
                session.add_dht_node(endpoint)

    leech_handle = None
    started = time.monotonic()
    if leecher:
        params = lt.parse_magnet_uri(args.leech_magnet)
        params.save_path = args.leech_save
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        leech_handle = leecher.add_torrent(params)
        print("LEECHER", leecher.listen_port(), flush=True)

    lookups = [str(lt.sha1_hash(bytes.fromhex(text))) for text in args.lookup]
    seed_hash = str(seeder[1].info_hash()) if seeder else None
    if seed_hash:
        # The seeder counts as announced once a plain node's get_peers finds it.
        lookups.append(seed_hash)
    seen_peers = set()
    deadline = started + args.timeout
    ready = seeder_announced = leech_done = False
    last_announce = last_lookup = float("-inf")
    while True:
        now = time.monotonic()
        if now >= deadline:
            print("TIMEOUT after", args.timeout, "s", flush=True)
            return 2 if leecher and not leech_done else 0
        for session in sessions:
            for alert in report_alerts(session):
                if not isinstance(alert, lt.dht_get_peers_reply_alert):
                    continue
                hex_hash = str(alert.info_hash)
                for ip, port in alert.peers():
                    if (hex_hash, ip, port) in seen_peers:
                        continue
                    seen_peers.add((hex_hash, ip, port))
                    if hex_hash == seed_hash and port == seeder[0].listen_port():
                        if not seeder_announced:
                            print("SEEDER", port, flush=True)
                        seeder_announced = True
                    if hex_hash != seed_hash or hex_hash in args.lookup:
                        print("PEERS", hex_hash, f"{ip}:{port}", flush=True)
        if not ready and all(dht_node_count(node) > 0 for node in nodes):
            print("READY", ",".join(str(p) for p in node_ports), flush=True)
            ready = True
        if seeder and ready and not seeder_announced:
            if now - last_announce >= ANNOUNCE_EVERY_SEC and seeder[1].status().is_seeding:
                seeder[1].force_dht_announce()
                last_announce = now
        if lookups and ready and now - last_lookup >= LOOKUP_EVERY_SEC:
            for hex_hash in lookups:
                nodes[0].dht_get_peers(lt.sha1_hash(bytes.fromhex(hex_hash)))
            last_lookup = now
        if leech_handle and not leech_done and leech_handle.status().is_seeding:
            print("DONE", f"{now - started:.3f}", flush=True)
            flush_to_disk(leecher, leech_handle)
            leech_done = True
        nodes[0].wait_for_alert(50)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=4, help="plain DHT nodes (at least 1)")
    parser.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT",
                        help="another DHT node every session should know (repeatable)")
    parser.add_argument("--seed-torrent", help=".torrent to seed and announce into the DHT")
    parser.add_argument("--seed-data", help="folder holding the seeded payload")
    parser.add_argument("--leech-magnet", help="magnet URI to download, peers from the DHT only")
    parser.add_argument("--leech-save", help="folder to download the magnet into")
    parser.add_argument("--lookup", action="append", default=[], metavar="HEX",
                        help="info-hash to look up with get_peers every few seconds")
    parser.add_argument("--timeout", type=float, default=300, help="seconds until exit")
    args = parser.parse_args()
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if bool(args.seed_torrent) != bool(args.seed_data):
        parser.error("--seed-torrent and --seed-data go together")
    if bool(args.leech_magnet) != bool(args.leech_save):
        parser.error("--leech-magnet and --leech-save go together")
    return args


def settings():
    return {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": True,
        # The default is a public router; nodes come from add_dht_node only.
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # libtorrent filters loopback and same-IP nodes by default; every node here is
        # 127.0.0.1 (INTEROP.md, "For DHT tests").
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
        # Every query here comes from 127.0.0.1: the per-IP limit (5 queries a second, then
        # the IP is ignored for minutes) and the 8 KB/s reply budget would silence nodes.
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1 << 24,
        # TCP peers only, as in lt_peer.py; the DHT still runs on the UDP socket.
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "in_enc_policy": lt.enc_policy.pe_disabled,
        "out_enc_policy": lt.enc_policy.pe_disabled,
        "allow_multiple_connections_per_ip": True,
        "ssrf_mitigation": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.dht_operation_notification,
    }


def start_seeder(args):
    session = lt.session(settings())
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.seed_torrent)
    params.save_path = args.seed_data
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = session.add_torrent(params)
    # Peers must come through the DHT: the torrent's own trackers are dropped.
    handle.replace_trackers([])
    return (session, handle)


def dht_node_count(session):
    # session.status() is deprecated in 2.0 but is the one synchronous way to read this.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return session.status().dht_nodes


def parse_endpoint(text):
    host, _, port = text.rpartition(":")
    return (host, int(port))


def report_alerts(session):
    """Prints the error alerts to stderr and returns all alerts."""
    alerts = session.pop_alerts()
    for alert in alerts:
        if alert.category() & lt.alert.category_t.error_notification:
            print(f"ALERT {type(alert).__name__}: {alert.message()}", file=sys.stderr, flush=True)
    return alerts


def flush_to_disk(session, handle):
    """Waits until libtorrent has handed every written block to the OS."""
    handle.flush_cache()
    deadline = time.monotonic() + FLUSH_WAIT_SEC
    while time.monotonic() < deadline:
        session.wait_for_alert(100)
        for alert in report_alerts(session):
            if isinstance(alert, lt.cache_flushed_alert):
                return


if __name__ == "__main__":
    sys.exit(main())
