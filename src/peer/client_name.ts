// BEP 20: the client software and version a peer id names, for logs and peer lists.
// Peer ids come from the network, so any bytes at all must give a name, never an error.

/** Two-letter Azureus-style codes (BEP 20 and the clients seen today). */
const AZUREUS_CLIENTS: Readonly<Record<string, string>> = {
  AZ: "Vuze",
  BC: "BitComet",
  BF: "Bitflu",
  BI: "BiglyBT",
  BT: "BitTorrent",
  CD: "Enhanced CTorrent",
  CT: "CTorrent",
  DE: "Deluge",
  FD: "Free Download Manager",
  FG: "FlashGet",
  HL: "Halite",
  KT: "KTorrent",
  LT: "libtorrent (Rasterbar)",
  lt: "libTorrent (rakshasa)",
  MO: "MonoTorrent",
  PI: "PicoTorrent",
  qB: "qBittorrent",
  SD: "Thunder",
  TD: "btclient",
  TR: "Transmission",
  UM: "µTorrent Mac",
  UT: "µTorrent",
  UW: "µTorrent Web",
  WD: "WebTorrent Desktop",
  WW: "WebTorrent",
  XL: "Xunlei",
};

/** One-letter Shadow-style codes (BEP 20). */
const SHADOW_CLIENTS: Readonly<Record<string, string>> = {
  A: "ABC",
  O: "Osprey Permaseed",
  Q: "BTQueue",
  R: "Tribler",
  S: "Shadow",
  T: "BitTornado",
  U: "UPnP NAT Bit Torrent",
};

/** BEP 20's Shadow-style digit alphabet: a character's index is its value (0-63). */
const SHADOW_DIGITS =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-";
const PRINTABLE_PREFIX_LENGTH = 8;

/** "libtorrent (Rasterbar) 2.0.8" for "-LT2080-…"; "unknown (…)" when no convention fits. */
export function clientName(peerId: Uint8Array): string {
  // one character a byte (latin1), so every byte value maps to exactly one character
  const id = String.fromCharCode(...peerId.subarray(0, 20));
  return aria2Style(id) ?? mainlineStyle(id) ?? azureusStyle(id) ??
    shadowStyle(id) ?? `unknown (${printablePrefix(id)})`;
}

/** aria2 writes "A2-" and major-minor-patch between dashes: "A2-1-36-0-". */
function aria2Style(id: string): string | undefined {
  const match = id.match(/^A2-(\d{1,3})-(\d{1,3})-(\d{1,3})-/);
  return match ? `aria2 ${match[1]}.${match[2]}.${match[3]}` : undefined;
}

/** Mainline: "M", then major-minor-tiny between dashes, dash-padded to 8 characters. */
function mainlineStyle(id: string): string | undefined {
  const match = id.slice(0, 8).match(/^M(\d+)-(\d+)-(\d+)-+$/);
  return match ? `Mainline ${match[1]}.${match[2]}.${match[3]}` : undefined;
}

/**
 * "-XXabcd-": each version character is one number, letters going on after 9 ("A" is 10:
 * libtorrent writes 1.2.10 as "12A0"); a fourth part of 0 is left out, as libtorrent does.
 */
function azureusStyle(id: string): string | undefined {
  if (id[0] !== "-" || id[7] !== "-") return undefined;
  const name = AZUREUS_CLIENTS[id.slice(1, 3)];
  const parts = [...id.slice(3, 7)].map(versionDigit);
  if (name === undefined || parts.some((part) => part === undefined)) {
    return undefined;
  }
  if (parts[3] === 0) parts.pop();
  return `${name} ${parts.join(".")}`;
}

/** "Tabc--": a letter, up to five version characters padded with "-" to 5 (BitTornado "T03I--"). */
function shadowStyle(id: string): string | undefined {
  const name = SHADOW_CLIENTS[id[0]];
  const match = id.slice(1, 6).match(/^([0-9A-Za-z.]{1,5})-*$/);
  if (name === undefined || match === null || id.length < 6) return undefined;
  return `${name} ${[...match[1]].map(versionDigit).join(".")}`;
}

/** 0-9, A-Z as 10-35, a-z as 36-61, "." as 62; anything else is not a version character. */
function versionDigit(char: string): number | undefined {
  const value = SHADOW_DIGITS.indexOf(char);
  return value >= 0 && value < 63 ? value : undefined;
}

/** The leading printable ASCII of the id, at most 8 characters, for a name still worth logging. */
function printablePrefix(id: string): string {
  const match = id.slice(0, PRINTABLE_PREFIX_LENGTH).match(/^[\x21-\x7e]*/);
  return match ? match[0] : "";
}
