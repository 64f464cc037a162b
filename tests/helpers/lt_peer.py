#!/usr/bin/python3
"""A libtorrent 2.0 peer for tests and the benchmark: seeds or leeches one torrent over plain
TCP on 127.0.0.1 only (or on --interface, inside a test's own network namespace).

Lines printed (stdout), for the TypeScript side to wait on:
  LISTEN <port>          the session is listening (port 0 picks one)
  READY <port>           seed mode: the files passed libtorrent's check, now seeding;
                         share mode: the check is done (the data may be partial), now serving
  PROGRESS <pct> <MiB/s> <peers>   leech mode, every few seconds
  DONE <seconds>         leech mode: complete (time from add_torrent), then exit 0
  TIMEOUT ...            --timeout passed: exit 2 (leech) or 0 (seed)
Errors reported by libtorrent go to stderr as `ALERT <type>: <message>`; they never stop it.
"""

import argparse
import sys
import time

import libtorrent as lt

ENCRYPTION = {
    "disabled": lt.enc_policy.pe_disabled,
    "enabled": lt.enc_policy.pe_enabled,
    "forced": lt.enc_policy.pe_forced,
}
PROGRESS_EVERY_SEC = 5.0
# connect_peer targets are dialled again this often while no peer is connected, because the
# peer under test (our client) may start listening after this script does.
REDIAL_EVERY_SEC = 2.0
FLUSH_WAIT_SEC = 10.0


def main():
    args = parse_args()
    session = lt.session(session_settings(args))
    if args.upload_limit:
        # Loopback peers fall in libtorrent's unlimited "local" peer class; put every address
        # in the global class so that the rate limit applies to them too.
        everyone = lt.ip_filter()
        everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        session.set_peer_class_filter(everyone)
    print("LISTEN", session.listen_port(), flush=True)

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save_path
    # Not auto-managed (and so not paused): the queueing logic must not hold the torrent back.
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    started = time.monotonic()
    handle = session.add_torrent(params)
    if args.upload_limit:
        handle.set_upload_limit(args.upload_limit)
    peers = [parse_endpoint(text) for text in args.connect]

    deadline = started + args.timeout
    last_progress = last_dial = float("-inf")
    announced_ready = checked = False
    while True:
        now = time.monotonic()
        if now >= deadline:
            print("TIMEOUT after", args.timeout, "s:", describe(handle.status()), flush=True)
            return 2 if args.mode == "leech" else 0
        for alert in report_alerts(session):
            checked = checked or isinstance(alert, lt.torrent_checked_alert)
        status = handle.status()
        if checked and status.num_peers == 0 and now - last_dial >= REDIAL_EVERY_SEC:
            for peer in peers:
                handle.connect_peer(peer)
            last_dial = now
        if args.mode == "share":
            if checked and not announced_ready:
                print("READY", session.listen_port(), flush=True)
                announced_ready = True
        elif args.mode == "seed":
            if status.is_seeding and not announced_ready:
                print("READY", session.listen_port(), flush=True)
                announced_ready = True
            elif checked and not status.is_seeding:
                print("NOT SEEDING after the check:", describe(status), flush=True)
                return 3
        else:
            if status.is_seeding:
                print("DONE", f"{now - started:.3f}", flush=True)
                flush_to_disk(session, handle)
                return 0
            if now - last_progress >= PROGRESS_EVERY_SEC:
                print("PROGRESS", describe(status), flush=True)
                last_progress = now
        session.wait_for_alert(100)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torrent", required=True)
    parser.add_argument("--save-path", required=True)
    parser.add_argument("--port", type=int, default=0, help="listen port, 0 picks one")
    parser.add_argument("--interface", default="127.0.0.1",
                        help="address to listen on and dial from (another one only in a test's namespace)")
    parser.add_argument("--mode", choices=["seed", "leech", "share"], required=True)
    parser.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                        help="dial this peer directly (repeatable)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds until exit")
    parser.add_argument("--encryption", choices=sorted(ENCRYPTION), default="disabled",
                        help="MSE/PE policy for both directions (default: plaintext only)")
    parser.add_argument("--upload-limit", type=int, default=0, metavar="BYTES_PER_S",
                        help="upload rate cap, 0 for none (to make a transfer last)")
    parser.add_argument("--lsd", action="store_true",
                        help="local service discovery on (it multicasts: only in a test's namespace)")
    return parser.parse_args()


def session_settings(args):
    policy = ENCRYPTION[args.encryption]
    return {
        "listen_interfaces": f"{args.interface}:{args.port}",
        "outgoing_interfaces": args.interface,
        "enable_dht": False,
        "enable_lsd": args.lsd,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only: uTP on loopback would hide the TCP path we want to test and benchmark.
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "in_enc_policy": policy,
        "out_enc_policy": policy,
        "anonymous_mode": False,
        # Every peer in a test swarm is 127.0.0.1.
        "allow_multiple_connections_per_ip": True,
        # Otherwise trackers on 127.0.0.1 with a path other than /announce are refused.
        "ssrf_mitigation": False,
        "upload_rate_limit": args.upload_limit,
        "download_rate_limit": 0,
        # Exiting must not wait the default 5 s for "stopped" announces.
        "stop_tracker_timeout": 1,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification,
    }


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


def describe(status):
    return (f"{status.progress * 100:.1f}% {status.download_payload_rate / 2**20:.1f} "
            f"{status.num_peers} state={status.state} pieces={status.num_pieces}")


def flush_to_disk(session, handle):
    """Waits until libtorrent has handed every written block to the OS, so the files are
    complete when this process exits."""
    handle.flush_cache()
    deadline = time.monotonic() + FLUSH_WAIT_SEC
    while time.monotonic() < deadline:
        session.wait_for_alert(100)
        for alert in report_alerts(session):
            if isinstance(alert, lt.cache_flushed_alert):
                return


if __name__ == "__main__":
    sys.exit(main())
