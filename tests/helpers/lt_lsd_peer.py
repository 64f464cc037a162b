#!/usr/bin/python3
"""A libtorrent 2.0 leecher whose only peer source is Local Service Discovery (BEP 14), for
tests/interop/lsd.test.ts. Run it only inside a network namespace: it multicasts to
239.192.152.143:6771. It listens on 127.0.0.1 and sends its LSD announces out of lo.

Lines printed (stdout):
  LISTEN <port>                   the session is listening
  LSD <libtorrent's log line>     what libtorrent's LSD logged (sent, heard, ignored)
  TIMEOUT                         --timeout passed, exit 0
"""

import argparse
import sys
import time

import libtorrent as lt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torrent", required=True)
    parser.add_argument("--save-path", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    session = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_lsd": True,
        "enable_dht": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        # plaintext, so that the test's raw listener can read the handshake
        "in_enc_policy": lt.enc_policy.pe_disabled,
        "out_enc_policy": lt.enc_policy.pe_disabled,
        # LSD's own log lines are session log alerts
        "alert_mask": lt.alert.category_t.session_log_notification
        | lt.alert.category_t.error_notification,
    })
    print("LISTEN", session.listen_port(), flush=True)

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save_path
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    session.add_torrent(params)

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            message = alert.message()
            if "LSD" in message:
                print("LSD", message, flush=True)
            elif alert.category() & lt.alert.category_t.error_notification:
                print(f"ALERT {type(alert).__name__}: {message}", file=sys.stderr, flush=True)
    print("TIMEOUT", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
