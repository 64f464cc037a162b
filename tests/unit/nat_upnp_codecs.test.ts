// SSDP search messages, the tolerant XML reader, IGD descriptions and SOAP
// envelopes and faults; hostile inputs for each.

import assert from "node:assert/strict";
import {
  decodeSoapResponse,
  encodeSoapRequest,
  findConnectionServices,
} from "../../src/nat/igd.ts";
import {
  decodeSearchResponse,
  encodeMSearch,
  orderGateways,
} from "../../src/nat/ssdp.ts";
import { childText, descendants, parseXml } from "../../src/nat/xml.ts";

const LOCATION = new URL("http://192.168.77.1:5000/rootDesc.xml");

Deno.test("SSDP: M-SEARCH for the gateway (UDA 1.1 §1.3.2)", () => {
  assert.equal(
    new TextDecoder().decode(
      encodeMSearch("urn:schemas-upnp-org:device:InternetGatewayDevice:1", 1),
    ),
    'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n',
  );
});

Deno.test("SSDP: a gateway's answer gives its description URL (UDA 1.1 §1.3.3)", () => {
  const answer = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n" +
      "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
      "USN: uuid:3d3cec3a::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
      "EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
      "location: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n",
  );
  const r = decodeSearchResponse(answer);
  assert.equal(r.kind, "found");
  assert.equal(r.kind === "found" && r.location.href, LOCATION.href);
});

Deno.test("SSDP: hostile answers are malformed", () => {
  const ok = "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n";
  const cases: [string | Uint8Array, RegExp][] = [
    [crypto.getRandomValues(new Uint8Array(300)), /status line/],
    ["NOTIFY * HTTP/1.1\r\n\r\n", /status line/],
    ["HTTP/1.1 404 Not Found\r\n\r\n", /status line/],
    [`HTTP/1.1 200 OK\r\n${ok}\r\n`, /no LOCATION/],
    [`HTTP/1.1 200 OK\r\n${ok}LOCATION: ::::\r\n\r\n`, /not a URL/],
    [
      `HTTP/1.1 200 OK\r\n${ok}LOCATION: file:///etc/passwd\r\n\r\n`,
      /not http/,
    ],
    [
      "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      /not a gateway/,
    ],
    [new Uint8Array(5000), /too long/],
  ];
  for (const [input, reason] of cases) {
    const bytes = typeof input === "string"
      ? new TextEncoder().encode(input)
      : input;
    const r = decodeSearchResponse(bytes);
    assert.equal(r.kind, "malformed", String(reason));
    assert.match(r.kind === "malformed" ? r.reason : "", reason);
  }
});

Deno.test("XML: elements by local name, text with entities and CDATA, the rest skipped", () => {
  const root = parseXml(
    '<?xml version="1.0"?><!DOCTYPE x><!-- <a>not me</a> -->' +
      "<s:a attr=\"1 > 0\" other='<b>'><b>one &amp; two &#x41;&#66;</b>" +
      "<b><![CDATA[<raw>]]></b><c/><b>three</b></s:a>",
  );
  const a = descendants(root, "a");
  assert.equal(a.length, 1);
  assert.deepEqual(descendants(root, "b").map((b) => b.text), [
    "one & two AB",
    "<raw>",
    "three",
  ]);
  assert.equal(childText(a[0], "b"), "one & two AB");
  assert.equal(descendants(root, "c").length, 1);
});

Deno.test("XML: malformed documents give what could be read, never an exception", () => {
  // Unclosed elements end at the end; a stray end tag is ignored.
  const root = parseXml("<a><b>x</c></b><d>y");
  assert.equal(childText(descendants(root, "a")[0], "b"), "x");
  assert.equal(descendants(root, "d")[0].text, "y");
  for (
    const text of [
      "",
      "<",
      "<a",
      "<!-- forever",
      "<![CDATA[ forever",
      "</>",
      "<a b='>",
      "&#99999999;&bogus;",
      "\u0000\uffff<\u0000>",
    ]
  ) {
    parseXml(text);
  }
  // Depth and element count are bounded.
  const deep = "<a>".repeat(100_000);
  let depth = 0;
  for (let e = parseXml(deep); e.children.length; e = e.children[0]) depth++;
  assert.ok(depth <= 33, `depth ${depth}`);
  const wide = parseXml("<b/>".repeat(100_000));
  assert.ok(wide.children.length <= 5000);
});

/** A description shaped like miniupnpd's (WANIPConnection:2 inside WANDevice inside the IGD). */
function description(service: string, controlUrl: string, extra = ""): string {
  return '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">' +
    extra +
    "<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>" +
    "<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>" +
    "<controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device>" +
    "<deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device>" +
    "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType>" +
    "<controlURL>/ctl/IP6FCtl</controlURL></service><service>" +
    `<serviceType>${service}</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>` +
    `<controlURL>${controlUrl}</controlURL></service></serviceList>` +
    "</device></deviceList></device></deviceList></device></root>";
}

Deno.test("IGD: the WAN connection service of a description, v1, v2 or PPP", () => {
  for (
    const type of [
      "urn:schemas-upnp-org:service:WANIPConnection:2",
      "urn:schemas-upnp-org:service:WANIPConnection:1",
      "urn:schemas-upnp-org:service:WANPPPConnection:1",
    ]
  ) {
    const found = findConnectionServices(
      description(type, "/ctl/IPConn"),
      LOCATION,
    );
    assert.ok(!("error" in found));
    assert.equal(found.length, 1);
    assert.equal(found[0].serviceType, type);
    assert.equal(
      found[0].controlUrl.href,
      "http://192.168.77.1:5000/ctl/IPConn",
    );
  }
  // URLBase, when given, is what the control URL is relative to.
  const based = findConnectionServices(
    description(
      "urn:schemas-upnp-org:service:WANIPConnection:1",
      "ctl",
      "<URLBase>http://192.168.77.1:5000/base/</URLBase>",
    ),
    LOCATION,
  );
  assert.equal(
    "error" in based ? based.error : based[0].controlUrl.href,
    "http://192.168.77.1:5000/base/ctl",
  );
});

Deno.test("IGD: every WAN connection service is returned, preferred first, so that each can be tried", () => {
  // A DSL modem: an unconnected WANIPConnection beside the WANPPPConnection that works.
  const both = description(
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
    "/ctl/PPP",
  ).replace(
    "<service><serviceType>urn:schemas-upnp-org:service:WANIPv6",
    "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>" +
      "<controlURL>/ctl/IPConn</controlURL></service>" +
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPv6",
  );
  const found = findConnectionServices(both, LOCATION);
  assert.ok(!("error" in found));
  assert.deepEqual(found.map((s) => [s.serviceType, s.controlUrl.pathname]), [
    ["urn:schemas-upnp-org:service:WANIPConnection:1", "/ctl/IPConn"],
    ["urn:schemas-upnp-org:service:WANPPPConnection:1", "/ctl/PPP"],
  ]);
  // One pointing elsewhere is dropped; the other is kept.
  const oneBad = findConnectionServices(
    both.replace("/ctl/IPConn", "http://10.0.0.9/steal"),
    LOCATION,
  );
  assert.ok(!("error" in oneBad));
  assert.deepEqual(oneBad.map((s) => s.controlUrl.pathname), ["/ctl/PPP"]);
});

Deno.test("IGD: a control URL on another port of the gateway's host is the gateway's", () => {
  const found = findConnectionServices(
    description(
      "urn:schemas-upnp-org:service:WANIPConnection:1",
      "http://192.168.77.1:49000/ctl/IPConn",
    ),
    LOCATION,
  );
  assert.ok(!("error" in found), JSON.stringify(found));
  assert.equal(
    found[0].controlUrl.href,
    "http://192.168.77.1:49000/ctl/IPConn",
  );
});

Deno.test("SSDP: the default gateway is tried first, then hosts on our link, then the rest", () => {
  const url = (host: string) => new URL(`http://${host}:5000/desc.xml`);
  const answered = [
    url("192.168.77.50"), // a LAN host, first to answer
    url("10.9.9.9"), // beyond the router
    url("192.168.77.1"), // the default gateway
    url("192.168.77.60"),
  ];
  const onLink = (host: string) => host.startsWith("192.168.77.");
  assert.deepEqual(
    orderGateways(answered, "192.168.77.1", onLink).map((u) => u.hostname),
    ["192.168.77.1", "192.168.77.50", "192.168.77.60", "10.9.9.9"],
  );
  assert.deepEqual(
    orderGateways(answered, undefined, () => false).map((u) => u.hostname),
    answered.map((u) => u.hostname),
  );
});

Deno.test("IGD: descriptions without a usable service, or pointing elsewhere, are refused", () => {
  const v1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
  const cases: [string, RegExp][] = [
    ["<html>hello</html>", /no WAN connection service/],
    [description("urn:schemas-upnp-org:service:Foo:1", "/x"), /no WAN/],
    [description(v1, ""), /no WAN/],
    [description(v1, "http://10.0.0.9:80/steal"), /not on the gateway/],
    [description(v1, "http://192.168.77.10:5000/x"), /not on the gateway/],
    [description(v1, "file:///etc/passwd"), /not on the gateway/],
    [description(v1, "http://[::1"), /not a URL/],
  ];
  for (const [xml, reason] of cases) {
    const r = findConnectionServices(xml, LOCATION);
    assert.ok("error" in r, String(reason));
    assert.match(r.error, reason);
  }
});

Deno.test("SOAP: a request envelope with escaped arguments (UDA 1.1 §3.2.1)", () => {
  const { body, soapAction } = encodeSoapRequest(
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "AddPortMapping",
    [["NewExternalPort", "6881"], ["NewPortMappingDescription", "a<b&c"]],
  );
  assert.equal(
    soapAction,
    '"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"',
  );
  assert.match(
    body,
    /<s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalPort>6881<\/NewExternalPort><NewPortMappingDescription>a&lt;b&amp;c<\/NewPortMappingDescription><\/u:AddPortMapping><\/s:Body>/,
  );
  // Our own reader reads it back.
  const args = descendants(parseXml(body), "AddPortMapping")[0];
  assert.equal(childText(args, "NewPortMappingDescription"), "a<b&c");
});

Deno.test("SOAP: replies and UPnP faults (UDA 1.1 §3.2.2)", () => {
  const reply = decodeSoapResponse(
    200,
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
      '<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2">' +
      "<NewExternalIPAddress> 10.77.0.1 </NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>",
    "GetExternalIPAddress",
  );
  assert.equal(
    reply.kind === "ok" && reply.values.get("NewExternalIPAddress"),
    "10.77.0.1",
  );
  const fault = decodeSoapResponse(
    500,
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>' +
      "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>" +
      '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode>' +
      "<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError>" +
      "</detail></s:Fault></s:Body></s:Envelope>",
    "AddPortMapping",
  );
  assert.deepEqual(fault, {
    kind: "fault",
    code: 718,
    description: "ConflictInMappingEntry",
  });
});

Deno.test("SOAP: garbage, wrong actions and code-less faults are malformed", () => {
  const cases: [number, string, RegExp][] = [
    [200, "", /no AddPortMappingResponse/],
    [200, "<x><DeletePortMappingResponse/></x>", /no AddPortMappingResponse/],
    [500, "Internal error", /HTTP status 500/],
    [404, "<html/>", /HTTP status 404/],
    [
      500,
      "<Fault><faultstring>bad</faultstring></Fault>",
      /without an error code/,
    ],
    [
      500,
      "<Fault><UPnPError><errorCode>7x</errorCode></UPnPError></Fault>",
      /without an error code/,
    ],
  ];
  for (const [status, body, reason] of cases) {
    const r = decodeSoapResponse(status, body, "AddPortMapping");
    assert.equal(r.kind, "malformed", body);
    assert.match(r.kind === "malformed" ? r.reason : "", reason);
  }
  // A reply whose response element is there but empty is fine.
  assert.equal(
    decodeSoapResponse(200, "<AddPortMappingResponse/>", "AddPortMapping").kind,
    "ok",
  );
});
