// A magnet link's first step (BEP 9): find peers for its info-hash (the
// link's trackers and x.pe peers, --peer, the DHT, LSD, PEX), fetch the info
// dictionary from them, save it as `<torrentsDir>/<info-hash>.torrent` (so
// the next run needs no fetch), and hand over a TorrentJob that downloads
// like any other.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config.ts";
import { encode } from "../bencode/encode.ts";
import type { MagnetLink } from "../metainfo/magnet.ts";
import { type Metainfo, parseMetainfo } from "../metainfo/metainfo.ts";
import type { HandedOverPeer } from "../metadata/metadata_peer.ts";
import { MetadataFetcher } from "../metadata/fetcher.ts";
import { PeerSources } from "../discovery/peer_sources.ts";
import { Announcer } from "../tracker/announcer.ts";
import type { PeerAddress } from "../net/address.ts";
import { encodeExtensionHandshake } from "../wire/extension.ts";
import { makePeerId, VERSION } from "../version.ts";
import { reservedWith } from "../wire/handshake.ts";
import type { HaltReason, TorrentRef } from "./events.ts";
import type { JobContext } from "./torrent_job.ts";
import { TorrentJob } from "./torrent_job.ts";

/** What a fetch gives the download: its job, addresses to dial, and live connections. */
export interface FetchedMagnet {
  job: TorrentJob;
  peers: PeerAddress[];
  handedOver: HandedOverPeer[];
}

/** Peer sources a private torrent (BEP 27) must not use. */
const TRACKERLESS = new Set(["dht", "lsd", "pex"]);
/** Trackers are told this much is left while the size is unknown: not a seed. */
const UNKNOWN_LEFT = 16 * 1024;
/** How often an unconnected fetch asks the DHT again (at most once a minute: PeerSources). */
const RETRY_EVERY_MS = 5000;
const STATUS_EVERY_MS = 30_000;

export class MagnetJob {
  constructor(
    /** What the user gave: the link itself or the .magnet file holding it. */
    readonly file: string,
    readonly link: MagnetLink,
    private config: Config,
  ) {}

  get name(): string {
    return this.link.name ?? this.link.infoHashHex;
  }

  get ref(): TorrentRef {
    return { name: this.name, infoHash: this.link.infoHashHex };
  }

  /** Where the fetched dictionary is saved, and looked for first. */
  static savedTorrentPath(config: Config, infoHashHex: string): string {
    return path.join(
      config.torrentsDir,
      `${infoHashHex.toLowerCase()}.torrent`,
    );
  }

  /**
   * Fetches the info dictionary; resolves with the job that downloads the
   * torrent and the peers met on the way, or with why it was stopped first.
   */
  async fetch(
    ctx: JobContext,
  ): Promise<FetchedMagnet | HaltReason> {
    const link = this.link;
    const c = this.config;
    const log = (text: string) => ctx.emit({ type: "log", text });
    const peerId = makePeerId();
    const reserved = reservedWith(
      ctx.session.dht ? ["extension", "fast", "dht"] : ["extension", "fast"],
    );
    const fetcher = new MetadataFetcher({
      handshake: { reserved, infoHash: link.infoHash, peerId },
      extensionHandshake: encodeExtensionHandshake({
        extensions: c.pex ? ["ut_metadata", "ut_pex"] : ["ut_metadata"],
        listenPort: ctx.announcePort.value,
        client: `btclient ${VERSION}`,
        maxRequests: 500,
      }),
      pex: c.pex,
      dhtPort: ctx.session.dht?.port ?? 0,
      onDhtNode: (host, port) => ctx.session.dht?.addNode(host, port),
      maxPeers: ctx.maxPeers,
      maxHalfOpen: c.maxHalfOpen,
      reconnectBaseMs: c.reconnectBaseSeconds * 1000,
      connectTimeoutMs: c.connectTimeoutSeconds * 1000,
      log,
      onEvent: (event) => ctx.emit({ ...event, torrent: this.ref }),
    });
    ctx.session.addSink(link.infoHashHex, fetcher);
    const announcer = link.trackers.length > 0
      ? new Announcer(link.trackers, {
        infoHash: link.infoHash,
        peerId,
        port: ctx.announcePort.value,
        numWant: c.numWant,
        timeoutMs: c.trackerTimeoutSeconds * 1000,
        udpMaxRetries: c.udpTrackerRetries,
        minReannounceSeconds: c.minReannounceSeconds,
        stats: () => ({ uploaded: 0, downloaded: 0, left: UNKNOWN_LEFT }),
        onPeers: (peers, source) => fetcher.addPeers(peers, source),
        log,
      })
      : null;
    // No announce yet: we have nothing to give until the dictionary is here.
    const sources = new PeerSources({
      infoHash: link.infoHash,
      infoHashHex: link.infoHashHex,
      dht: ctx.session.dht,
      lsd: ctx.session.lsd,
      announcePort: 0,
      onPeers: (peers, source) => fetcher.addPeers(peers, source),
      log,
    });
    ctx.emit({ type: "metadataFetching", torrent: this.ref });
    announcer?.start();
    const unfollow = ctx.announcePort.follow((port) =>
      announcer?.setPort(port)
    );
    sources.start();
    fetcher.addPeers(link.peers, "magnet");
    fetcher.addPeers(ctx.peers, "command line");
    let ticks = 0;
    const retry = setInterval(() => {
      if (fetcher.connected === 0) sources.needPeers();
      if (++ticks % (STATUS_EVERY_MS / RETRY_EVERY_MS) === 0) {
        log(
          `${this.name}: still fetching the metadata: ${fetcher.connected} peers connected, ${fetcher.swarm.peers.size} known`,
        );
      }
    }, RETRY_EVERY_MS);
    let meta: Metainfo | null = null;
    let torrentBytes: Uint8Array;
    let outcome: Uint8Array | HaltReason;
    let handedOver: HandedOverPeer[] = [];
    try {
      outcome = await Promise.race([fetcher.done, ctx.stop]);
      if (typeof outcome === "string") return outcome;
      torrentBytes = torrentFile(outcome, link.trackers);
      meta = parseMetainfo(torrentBytes);
    } finally {
      clearInterval(retry);
      unfollow();
      ctx.session.removeSink(link.infoHashHex, fetcher);
      // BEP 27: a private torrent keeps only peers from its trackers, the link and --peer.
      const isPrivate = meta?.private ?? false;
      const keep = (source: string) =>
        meta !== null && !(isPrivate && TRACKERLESS.has(source));
      sources.stop();
      [handedOver] = await Promise.all([
        fetcher.stop(keep),
        announcer?.stop(2000),
      ]);
    }
    const saved = MagnetJob.savedTorrentPath(c, link.infoHashHex);
    let saveError: string | undefined;
    try {
      fs.mkdirSync(path.dirname(saved), { recursive: true });
      // Written whole or not at all: the next run trusts this file.
      fs.writeFileSync(`${saved}.part`, torrentBytes);
      fs.renameSync(`${saved}.part`, saved);
    } catch (e) {
      saveError = e instanceof Error ? e.message : String(e);
    }
    ctx.emit({
      type: "metadata",
      torrent: { name: meta.name, infoHash: link.infoHashHex },
      bytes: outcome.length,
      savedAs: saved,
      ...(saveError !== undefined ? { saveError } : {}),
    });
    const peers = [...fetcher.swarm.peers.values()]
      .filter((p) => !p.excluded && !p.connected)
      .filter((p) => !(meta.private && TRACKERLESS.has(p.source)))
      .map((p) => ({ host: p.host, port: p.port }));
    return {
      job: TorrentJob.fromMetainfo(saved, meta, c),
      peers,
      handedOver,
    };
  }
}

/**
 * A .torrent file around a verified info dictionary: its raw bytes go in as
 * they are (the info-hash is theirs), with the link's trackers as
 * announce-list tiers (BEP 12).
 */
function torrentFile(info: Uint8Array, trackers: string[][]): Uint8Array {
  const head = encode({
    announce: trackers[0]?.[0],
    "announce-list": trackers.length > 0 ? trackers : undefined,
  });
  // head is "d...e": the info key sorts after both announce keys.
  const key = new TextEncoder().encode("4:info");
  const out = new Uint8Array(head.length - 1 + key.length + info.length + 1);
  out.set(head.subarray(0, head.length - 1));
  out.set(key, head.length - 1);
  out.set(info, head.length - 1 + key.length);
  out[out.length - 1] = 0x65; // e
  return out;
}
