// The peer report (--peer-report FILE): one row per peer address this run,
// as JSON (an array of objects) or CSV (a header line, then one line each).

import { score } from "./rating.ts";
import type { PeerRecord } from "./swarm.ts";

export interface PeerReportRow {
  address: string;
  client: string;
  downloaded: number;
  uploaded: number;
  /** Best download rate seen, bytes a second. */
  rate: number;
  rttMs: number;
  failedPieces: number;
  violations: number;
  score: number;
  banned: boolean;
}

const COLUMNS: (keyof PeerReportRow)[] = [
  "address",
  "client",
  "downloaded",
  "uploaded",
  "rate",
  "rttMs",
  "failedPieces",
  "violations",
  "score",
  "banned",
];

/** Rows for every peer we were connected to, best score first. */
export function peerReportRows(records: Iterable<PeerRecord>): PeerReportRow[] {
  return [...records]
    .filter((p) => p.client !== "")
    .map((p) => ({
      address: p.key,
      client: p.client,
      downloaded: p.rating.downloaded,
      uploaded: p.rating.uploaded,
      rate: Math.round(p.rating.peakRate),
      rttMs: Math.round(p.rating.rttMs),
      failedPieces: p.rating.failedPieces,
      violations: p.rating.violations,
      score: p.rating.banned ? -1e9 : Math.round(score(p.rating) * 10) / 10,
      banned: p.rating.banned,
    }))
    .sort((a, b) => b.score - a.score);
}

export function formatPeerReport(
  rows: PeerReportRow[],
  format: "json" | "csv",
): string {
  if (format === "json") return JSON.stringify(rows, null, 2) + "\n";
  const lines = [COLUMNS.join(",")];
  for (const row of rows) {
    lines.push(COLUMNS.map((c) => csvField(row[c])).join(","));
  }
  return lines.join("\n") + "\n";
}

function csvField(value: string | number | boolean): string {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
