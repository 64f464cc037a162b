#!/usr/bin/python3
"""A hostile home router for the port-mapping tests, run in the router namespace of the test
lab: it answers every NAT-PMP/PCP request on UDP 5351 and every SSDP search with garbage, and
serves UPnP descriptions and SOAP answers that are broken in the ways real routers and attackers
break them. Nothing it says is a usable mapping. A second LAN address of the router plays
another host on the LAN: it answers each search first, with several descriptions, as a host
that wants to crowd the router out of the results would.

Usage: garbage_gateway.py LAN_ADDRESS ELSEWHERE_ADDRESS OTHER_LAN_ADDRESS
Prints "GATEWAY READY" once listening, then one line per request it got:
  PORTCONTROL <version> <bytes>   a datagram on 5351
  MSEARCH                         an SSDP search
  HTTP <method> <path>            an HTTP request on port 5000
"""

import http.server
import os
import socket
import struct
import sys
import threading

SSDP_GROUP = "239.255.255.250"
HTTP_PORT = 5000
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
WAN_IP = "urn:schemas-upnp-org:service:WANIPConnection:1"
WAN_PPP = "urn:schemas-upnp-org:service:WANPPPConnection:1"


LOG_LOCK = threading.Lock()


def log(*words):
    # One write per line under a lock: print() from several threads can
    # interleave a line with another's newline, and the test misses it.
    with LOG_LOCK:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def port_control_garbage(request):
    """Answers a NAT-PMP or PCP request with datagrams that are all wrong."""
    header = struct.pack("!BBBBII", 2, 0x81, 0, 0, 120, 5)
    return [
        b"\x01\x02\x03",                                   # too short for anything
        bytes([9]) + os.urandom(59),                       # unknown version
        header + bytes(12) + os.urandom(36),               # a MAP answer with someone else's nonce
        bytes([2, 0x81]) + os.urandom(1198),               # longer than PCP allows
        bytes([0, 0x82, 0, 0]) + os.urandom(5),            # a NAT-PMP map answer cut short
        request,                                           # our own request, echoed
    ]


def port_control_socket(lan_address):
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((lan_address, 5351))
    return server


def serve_port_control(server):
    while True:
        request, peer = server.recvfrom(2048)
        log("PORTCONTROL", request[0] if request else -1, len(request))
        for reply in port_control_garbage(request):
            server.sendto(reply, peer)


def answer(location, target=IGD):
    return (f"HTTP/1.1 200 OK\r\nST: {target}\r\nLOCATION: {location}\r\n\r\n").encode()


def ssdp_answers(lan_address, elsewhere):
    return [
        os.urandom(200),
        b"HTTP/1.1 200 OK\r\nST: " + IGD.encode() + b"\r\n\r\n",   # no LOCATION
        answer(f"http://{elsewhere}:{HTTP_PORT}/rootDesc.xml"),     # points at another host
        # Its WANIPConnection answers AddPortMapping with garbage, its WANPPPConnection gives
        # a garbage external address.
        answer(f"http://{lan_address}:{HTTP_PORT}/rootDesc.xml"),
    ]


def other_host_answers(other_address):
    """The other LAN host: a garbage description first, then more that must not be fetched."""
    return [answer(f"http://{other_address}:{HTTP_PORT}/broken.xml")] + [
        answer(f"http://{other_address}:{HTTP_PORT}/flood{i}.xml") for i in range(5)
    ]


def ssdp_socket(lan_address):
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", 1900))
    membership = socket.inet_aton(SSDP_GROUP) + socket.inet_aton(lan_address)
    server.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    return server


def serve_ssdp(server, lan_address, elsewhere, other_address):
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((other_address, 0))
    while True:
        request, peer = server.recvfrom(2048)
        if not request.startswith(b"M-SEARCH"):
            continue
        log("MSEARCH")
        for reply in other_host_answers(other_address):
            other.sendto(reply, peer)
        for reply in ssdp_answers(lan_address, elsewhere):
            server.sendto(reply, peer)


def description(services):
    listed = "".join(
        f"<service><serviceType>{service}</serviceType><controlURL>{control_url}</controlURL>"
        "</service>" for service, control_url in services)
    return (
        '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
        f"<deviceType>{IGD}</deviceType><deviceList><device><deviceList><device><serviceList>"
        f"{listed}</serviceList></device></deviceList></device></deviceList></device></root>"
    )


DESCRIPTIONS = {
    "/rootDesc.xml": description([(WAN_IP, "/ctl/IPConn"), (WAN_PPP, "/ctl/PPP")]),
}
BROKEN = "<root><device><serviceList><service><serviceType>" + WAN_IP + "</servi\x00\xff<<<"


def soap_reply(action, values):
    return (f'<s:Envelope><s:Body><u:{action}Response xmlns:u="{WAN_IP}">{values}'
            f"</u:{action}Response></s:Body></s:Envelope>")


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        log("HTTP GET", self.path)
        self.reply(200, DESCRIPTIONS.get(self.path, BROKEN))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(min(length, 65536))
        action = self.headers.get("SOAPAction", "").strip('"').rpartition("#")[2]
        log("HTTP POST", self.path, action)
        if self.path == "/ctl/PPP":
            address = "<NewExternalIPAddress>&lt;script&gt;</NewExternalIPAddress>"
            self.reply(200, soap_reply(action, address))
        elif action == "GetExternalIPAddress":
            address = "<NewExternalIPAddress>10.77.0.1</NewExternalIPAddress>"
            self.reply(200, soap_reply(action, address))
        else:
            # A 500 that is a SOAP fault without a UPnP error code, cut short.
            self.reply(500, "<s:Envelope><s:Body><s:Fault><faultstring>Boom</faultstring>")

    def reply(self, status, text):
        body = text.encode("utf-8", "surrogateescape")
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    lan_address, elsewhere, other_address = sys.argv[1], sys.argv[2], sys.argv[3]
    # Both LAN addresses (the router's namespace has nothing else worth hiding).
    httpd = http.server.ThreadingHTTPServer(("", HTTP_PORT), Handler)
    workers = ((serve_port_control, (port_control_socket(lan_address),)),
               (serve_ssdp, (ssdp_socket(lan_address), lan_address, elsewhere, other_address)),
               (httpd.serve_forever, ()))
    for target, args in workers:
        threading.Thread(target=target, args=args, daemon=True).start()
    log("GATEWAY READY")
    threading.Event().wait()


if __name__ == "__main__":
    main()
