/**
 * Sums a V8 `.cpuprofile`'s self time by function and prints the top N.
 *
 *     deno run -A bench/cpuprofile_top.ts profile.cpuprofile [N]
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** A V8 CPU profile, as `Profiler.stop` returns it. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's summed self time. */
export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  percent: number;
}

function shortUrl(url: string): string {
  if (url === "") return "(native)";
  const npm = url.match(/registry\.npmjs\.org\/([^/]+(?:\/[^/]+)?)\/[^/]+\/(.*)$/);
  if (npm) return `npm:${npm[1]}/${npm[2]!.replace(/^lib\//, "")}`;
  const local = url.match(/\/(src|bench|tests)\/(.*)$/);
  if (local) return `${local[1]}/${local[2]}`;
  if (url.startsWith("ext:")) return url;
  return url.slice(url.lastIndexOf("/") + 1);
}

/** Self time per function (name + file + line), largest first. */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const sums = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byNode.get(profile.samples[i]!);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node) continue;
    total += dt;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    // Local TypeScript is profiled as Deno's transpiled JS: its line numbers do not match.
    const short = shortUrl(url);
    const where = !url
      ? ""
      : /^(src|bench|tests)\//.test(short)
      ? short
      : `${short}:${lineNumber + 1}`;
    const key = `${name}|${where}`;
    const entry = sums.get(key) ?? { name, where, us: 0 };
    entry.us += dt;
    sums.set(key, entry);
  }
  return [...sums.values()]
    .map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, percent: (e.us / total) * 100 }))
    .sort((a, b) => b.ms - a.ms);
}

/** A Markdown table of the top `n` functions by self time. */
export function topTable(profile: CpuProfile, n = 15): string {
  const rows = selfTimes(profile).slice(0, n);
  return [
    "| # | self ms | self % | function | where |",
    "| ---: | ---: | ---: | --- | --- |",
    ...rows.map((r, i) =>
      `| ${i + 1} | ${r.ms.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.name}\` | ${r.where} |`
    ),
  ].join("\n");
}

if (import.meta.main) {
  const [file, n] = Deno.args;
  if (!file) throw new Error("usage: cpuprofile_top.ts <file.cpuprofile> [N]");
  console.log(topTable(JSON.parse(await Deno.readTextFile(file)), Number(n ?? 15)));
}
