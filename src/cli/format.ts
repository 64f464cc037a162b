// Human-readable sizes, rates and durations for progress and summaries.

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  // Compare after rounding to one decimal, so 1048575 B shows as 1.0 MiB, not 1024.0 KiB.
  while (
    (u === 0 ? n : Math.round(n * 10) / 10) >= 1024 && u < units.length - 1
  ) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }
  const h = Math.floor(s / 3600);
  if (h >= 100) return `${Math.floor(h / 24)}d`;
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
