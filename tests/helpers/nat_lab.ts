// A home network in three network namespaces, for port mapping tests against
// a real gateway (../shared/INTEROP.md, "A real NAT gateway"):
//
//   LAN host 192.168.77.2 --veth-- 192.168.77.1 router 10.77.0.1 --veth-- 10.77.0.2 WAN host
//   (default route via the router)  (NAT out of the WAN side,      (a route to 10.77.0.0/24 only)
//                                    FORWARD policy DROP, miniupnpd)
//
// Nothing sent inside can leave: the namespaces have no link to the host's
// network. Names are unique per run; close() kills every process the lab
// started by PID and deletes the namespaces. Namespaces left by a run that
// died (its PID gone) are deleted when the next lab is made.

import { DEBIAN_PYTHON } from "./mktorrent.ts";
import { ExternalProcess } from "./process.ts";

export const LAN_HOST = "192.168.77.2";
export const ROUTER_LAN = "192.168.77.1";
export const ROUTER_WAN = "10.77.0.1";
export const WAN_HOST = "10.77.0.2";
const STUN_PORT = 3478;
const PREFIX = "btnat-";
const STUN_SCRIPT = new URL("./stun_responder.py", import.meta.url).pathname;
const COMMAND_TIMEOUT_SEC = 20;

/** A port forward as the router's firewall shows it. */
export interface RouterMapping {
  protocol: "tcp" | "udp";
  externalPort: number;
}

let labCount = 0;

export class NatLab {
  readonly lan: string;
  readonly router: string;
  readonly wan: string;
  readonly #processes = new Set<ExternalProcess>();
  #miniupnpd: ExternalProcess | null = null;

  private constructor(readonly dir: string, id: string) {
    this.lan = `${PREFIX}${id}-lan`;
    this.router = `${PREFIX}${id}-rtr`;
    this.wan = `${PREFIX}${id}-wan`;
  }

  /**
   * Builds the namespaces, links, addresses, routes and the router's NAT and
   * firewall, and starts the STUN responder on the WAN host. Throws, saying
   * what is missing, when ip, iptables-legacy or miniupnpd is not installed.
   */
  static async create(): Promise<NatLab> {
    await requireTools();
    await deleteStaleNamespaces();
    const dir = await Deno.makeTempDir({ prefix: "nat_lab_" });
    const lab = new NatLab(dir, `${Deno.pid}-${++labCount}`);
    try {
      await lab.#build();
    } catch (e) {
      await lab.close();
      throw e;
    }
    return lab;
  }

  /** Runs a program in one of the namespaces, with a bounded lifetime. */
  spawn(
    namespace: string,
    options: {
      name: string;
      cmd: string;
      args: string[];
      lifetimeSec: number;
      cwd?: string;
    },
  ): ExternalProcess {
    const process = ExternalProcess.spawn({
      ...options,
      cmd: "ip",
      args: ["netns", "exec", namespace, options.cmd, ...options.args],
    });
    this.#processes.add(process);
    return process;
  }

  /** Stops a process started by spawn(). */
  async stop(process: ExternalProcess): Promise<void> {
    await process.stop();
    this.#processes.delete(process);
  }

  /** Starts miniupnpd on the router (UPnP IGD, NAT-PMP, PCP); resolves once it listens. */
  async startMiniupnpd(): Promise<void> {
    const conf = `${this.dir}/miniupnpd.conf`;
    await Deno.writeTextFile(conf, this.#miniupnpdConfig());
    const process = this.spawn(this.router, {
      name: "miniupnpd",
      cmd: "miniupnpd",
      args: ["-d", "-f", conf, "-P", `${this.dir}/miniupnpd.pid`],
      lifetimeSec: 300,
    });
    this.#miniupnpd = process;
    await process.waitForLine(/Listening for NAT-PMP\/PCP traffic/, 15_000);
  }

  /**
   * Restarts miniupnpd the way a rebooted router comes back: every mapping
   * lost (its chains and lease file emptied) and a new NAT-PMP/PCP epoch.
   */
  async restartMiniupnpd(): Promise<void> {
    if (this.#miniupnpd) await this.stop(this.#miniupnpd);
    for (const [table, chain] of CHAINS) {
      await this.#iptables("-t", table, "-F", chain);
    }
    await Deno.remove(`${this.dir}/leases`).catch(() => {});
    await this.startMiniupnpd();
  }

  /** The port forwards miniupnpd has made (its nat chain). */
  async mappings(): Promise<RouterMapping[]> {
    const listing = await this.#iptables("-t", "nat", "-S", "MINIUPNPD");
    const found: RouterMapping[] = [];
    for (const line of listing.split("\n")) {
      const m = /^-A MINIUPNPD .*-p (tcp|udp) .*--dport (\d+)/.exec(line);
      if (m) {
        found.push({
          protocol: m[1] as "tcp" | "udp",
          externalPort: Number(m[2]),
        });
      }
    }
    return found;
  }

  /** Every rule in miniupnpd's chains (nat, filter, postrouting), to check that none is left. */
  async rules(): Promise<string[]> {
    const rules: string[] = [];
    for (const [table, chain] of CHAINS) {
      const listing = await this.#iptables("-t", table, "-S", chain);
      rules.push(...listing.split("\n").filter((l) => l.startsWith("-A ")));
    }
    return rules;
  }

  /**
   * Forwards externalPort to another LAN host (192.168.77.9) in miniupnpd's
   * chain, so that the gateway sees a conflict when we ask for that port.
   */
  async occupy(protocol: "tcp" | "udp", externalPort: number): Promise<void> {
    await this.#iptables(
      "-t",
      "nat",
      "-A",
      "MINIUPNPD",
      "-p",
      protocol,
      "--dport",
      String(externalPort),
      "-j",
      "DNAT",
      "--to-destination",
      `192.168.77.9:${externalPort}`,
    );
  }

  /** Gives the router another address on its LAN side, to play a second LAN host. */
  async addRouterLanAddress(address: string): Promise<void> {
    await run("ip", [
      "-n",
      this.router,
      "addr",
      "add",
      `${address}/24`,
      "dev",
      "rlan",
    ]);
  }

  /** Kills every process the lab started, deletes its namespaces and folder. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#processes].map((p) => p.stop()));
    this.#processes.clear();
    for (const namespace of [this.lan, this.router, this.wan]) {
      await run("ip", ["netns", "delete", namespace]).catch(() => {});
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  async #build(): Promise<void> {
    const { lan, router, wan } = this;
    for (const namespace of [lan, router, wan]) {
      await run("ip", ["netns", "add", namespace]);
      await run("ip", ["-n", namespace, "link", "set", "lo", "up"]);
    }
    await run("ip", [
      "-n",
      lan,
      "link",
      "add",
      "lan0",
      "type",
      "veth",
      "peer",
      "name",
      "rlan",
      "netns",
      router,
    ]);
    await run("ip", [
      "-n",
      router,
      "link",
      "add",
      "rwan",
      "type",
      "veth",
      "peer",
      "name",
      "wan0",
      "netns",
      wan,
    ]);
    const addresses: [string, string, string][] = [
      [lan, "lan0", `${LAN_HOST}/24`],
      [router, "rlan", `${ROUTER_LAN}/24`],
      [router, "rwan", `${ROUTER_WAN}/24`],
      [wan, "wan0", `${WAN_HOST}/24`],
    ];
    for (const [namespace, link, address] of addresses) {
      await run("ip", ["-n", namespace, "addr", "add", address, "dev", link]);
      await run("ip", ["-n", namespace, "link", "set", link, "up"]);
    }
    await run("ip", ["-n", lan, "route", "add", "default", "via", ROUTER_LAN]);
    await run("ip", [
      "netns",
      "exec",
      router,
      "sysctl",
      "-qw",
      "net.ipv4.ip_forward=1",
    ]);
    // A home router: LAN out through NAT, nothing in unless a mapping lets it.
    await this.#iptables("-P", "FORWARD", "DROP");
    await this.#iptables(
      "-A",
      "FORWARD",
      "-m",
      "conntrack",
      "--ctstate",
      "ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    );
    await this.#iptables(
      "-A",
      "FORWARD",
      "-i",
      "rlan",
      "-o",
      "rwan",
      "-j",
      "ACCEPT",
    );
    await this.#iptables(
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "rwan",
      "-j",
      "MASQUERADE",
    );
    // miniupnpd's chains, which Debian's iptables_init.sh would make.
    for (const [table, chain] of CHAINS) {
      await this.#iptables("-t", table, "-N", chain);
    }
    await this.#iptables(
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      "-i",
      "rwan",
      "-j",
      "MINIUPNPD",
    );
    await this.#iptables(
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "rwan",
      "-j",
      "MINIUPNPD-POSTROUTING",
    );
    await this.#iptables(
      "-A",
      "FORWARD",
      "-i",
      "rwan",
      "!",
      "-o",
      "rwan",
      "-j",
      "MINIUPNPD",
    );
    const stun = this.spawn(wan, {
      name: "STUN responder",
      cmd: DEBIAN_PYTHON,
      args: [STUN_SCRIPT, WAN_HOST, String(STUN_PORT)],
      lifetimeSec: 300,
    });
    await stun.waitForLine(/^STUN READY/, 10_000);
  }

  /** miniupnpd 2.3.1 settings that work here (INTEROP.md); short leases allowed. */
  #miniupnpdConfig(): string {
    return [
      "ext_ifname=rwan",
      "listening_ip=rlan",
      "http_port=5000",
      "enable_natpmp=yes",
      "enable_upnp=yes",
      "secure_mode=yes",
      "system_uptime=no",
      "upnp_forward_chain=MINIUPNPD",
      "upnp_nat_chain=MINIUPNPD",
      "upnp_nat_postrouting_chain=MINIUPNPD-POSTROUTING",
      // A private WAN address is accepted once a STUN check says it is reachable.
      "ext_perform_stun=yes",
      `ext_stun_host=${WAN_HOST}`,
      `ext_stun_port=${STUN_PORT}`,
      "min_lifetime=10",
      `lease_file=${this.dir}/leases`,
      "uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b",
      "allow 1024-65535 192.168.77.0/24 1024-65535",
      "deny 0-65535 0.0.0.0/0 0-65535",
      "",
    ].join("\n");
  }

  #iptables(...args: string[]): Promise<string> {
    return run("ip", [
      "netns",
      "exec",
      this.router,
      "iptables-legacy",
      "-w",
      ...args,
    ]);
  }
}

/** miniupnpd's chains, by table. */
const CHAINS: [string, string][] = [
  ["nat", "MINIUPNPD"],
  ["nat", "MINIUPNPD-POSTROUTING"],
  ["filter", "MINIUPNPD"],
  ["mangle", "MINIUPNPD"],
];

async function requireTools(): Promise<void> {
  for (const tool of ["ip", "iptables-legacy", "miniupnpd"]) {
    const found = await run("sh", ["-c", `command -v ${tool}`]).catch(() => "");
    if (!found.trim()) {
      throw new Error(
        `${tool} is not installed: the port mapping tests need iproute2, iptables and miniupnpd-iptables (.ci/run installs them)`,
      );
    }
  }
}

/** Namespaces of labs whose test process is gone: a run killed before its cleanup. */
async function deleteStaleNamespaces(): Promise<void> {
  const listing = await run("ip", ["netns", "list"]);
  for (const line of listing.split("\n")) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\d+-(lan|rtr|wan))\\b`).exec(line);
    if (!m || Number(m[2]) === Deno.pid) continue;
    const alive = await Deno.stat(`/proc/${m[2]}`).then(
      () => true,
      () => false,
    );
    if (!alive) await run("ip", ["netns", "delete", m[1]]).catch(() => {});
  }
}

/** Runs a short command to its end (bounded by timeout(1)); its stdout, or an Error with stderr. */
async function run(cmd: string, args: string[]): Promise<string> {
  const output = await new Deno.Command("timeout", {
    args: [`${COMMAND_TIMEOUT_SEC}s`, cmd, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (code ${output.code}): ${
        decoder.decode(output.stderr).trim()
      }`,
    );
  }
  return decoder.decode(output.stdout);
}
