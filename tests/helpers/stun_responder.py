#!/usr/bin/python3
"""A STUN Binding responder (RFC 5389 §7.3, §15.2) for the port-mapping test lab: answers each
Binding request with the sender's address as XOR-MAPPED-ADDRESS. miniupnpd asks it, from the
router's WAN side, whether the WAN address is reachable; without an answer miniupnpd refuses to
forward to a private WAN address.

Prints "STUN READY <host> <port>" once bound, and "BINDING <host> <port>" per request answered.
"""

import socket
import struct
import sys

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020
FAMILY_IPV4 = 0x01


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((host, port))
    print("STUN READY", host, port, flush=True)
    while True:
        request, (peer_host, peer_port) = server.recvfrom(2048)
        if len(request) < 20:
            continue
        kind, _length, cookie = struct.unpack("!HHI", request[:8])
        if kind != BINDING_REQUEST or cookie != MAGIC_COOKIE:
            continue
        transaction_id = request[8:20]
        address = struct.unpack("!I", socket.inet_aton(peer_host))[0]
        attribute = struct.pack("!HHBBHI", XOR_MAPPED_ADDRESS, 8, 0, FAMILY_IPV4,
                                peer_port ^ (MAGIC_COOKIE >> 16), address ^ MAGIC_COOKIE)
        header = struct.pack("!HHI", BINDING_SUCCESS, len(attribute), MAGIC_COOKIE)
        server.sendto(header + transaction_id + attribute, (peer_host, peer_port))
        print("BINDING", peer_host, peer_port, flush=True)


if __name__ == "__main__":
    main()
