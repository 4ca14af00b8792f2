/**
 * The HTML dashboard: networks with subnet-usage bars, cached attachments,
 * leaked leases, and config errors, with stale items highlighted. One static
 * page, no script; every value from disk goes through {@linkcode escapeHtml}.
 *
 * @module
 */
import type { AttachmentStatus, Inventory, NetworkSummary } from "./inventory.ts";

/** The result of a network's CNI STATUS, as the dashboard shows it. */
export interface NetworkStatusView {
  /** `"ok"`, `"failed"`, or `"not-supported"` (list older than 1.1.0). */
  state: "ok" | "failed" | "not-supported" | "not-run";
  code?: number;
  msg?: string;
}

/** What the dashboard shows. */
export interface DashboardData {
  inventory: Inventory;
  /** STATUS per network name (only for networks where it was run). */
  statuses?: Record<string, NetworkStatusView>;
  /** Program version for the footer. */
  version?: string;
  /** Page generation time, ms since the epoch. */
  now: number;
}

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const e = escapeHtml;

const STYLE = `
:root { color-scheme: light; --fg:#1d2330; --muted:#5d6677; --line:#dfe3ea; --ok:#1f8a4c;
  --warn:#b7791f; --bad:#c53030; --bar:#3b6fd8; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
  background:var(--bg); }
header { background:#1d2330; color:#fff; padding:14px 24px; display:flex; gap:24px; align-items:baseline; }
header h1 { font-size:18px; margin:0; }
header .sum { color:#c5cbd6; }
header .sum b { color:#fff; }
header .sum b.bad { color:#ff8a8a; }
main { padding:16px 24px 32px; max-width:1300px; }
h2 { font-size:15px; margin:22px 0 8px; }
section.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 16px;
  margin-bottom:10px; }
.net-head { display:flex; gap:12px; align-items:baseline; flex-wrap:wrap; }
.net-head .name { font-weight:600; font-size:15px; }
.muted { color:var(--muted); }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12.5px; }
.chain { margin:6px 0; display:flex; gap:6px; flex-wrap:wrap; }
.plugin { border:1px solid var(--line); border-radius:4px; padding:1px 7px; font-size:12.5px; }
.plugin.cnibox { border-color:#9db4e8; background:#eef3fd; }
.plugin.missing { border-color:var(--bad); color:var(--bad); background:#fff2f2; }
.badge { border-radius:10px; padding:1px 8px; font-size:12px; font-weight:600; }
.badge.ok { background:#e3f5ea; color:var(--ok); }
.badge.failed, .badge.stale { background:#fde8e8; color:var(--bad); }
.badge.neutral { background:#eef0f4; color:var(--muted); }
.range { display:grid; grid-template-columns:220px 1fr 170px; gap:10px; align-items:center; margin:4px 0; }
.bar { height:12px; background:#e9edf3; border-radius:6px; overflow:hidden; }
.bar > span { display:block; height:100%; background:var(--bar); }
.bar.high > span { background:var(--warn); }
.bar.full > span { background:var(--bad); }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f0f2f6; font-weight:600; font-size:12.5px; }
tr.stale td { background:#fff4f4; }
tr.stale td:first-child { box-shadow: inset 3px 0 0 var(--bad); }
.empty { color:var(--muted); padding:10px 0; }
ul.errors li { color:var(--bad); }
footer { color:var(--muted); font-size:12px; padding:0 24px 24px; }
`;

function usageBar(used: number, capacity: number): string {
  const pct = capacity > 0 ? Math.min(100, (used / capacity) * 100) : 0;
  const cls = pct >= 100 ? "bar full" : pct >= 80 ? "bar high" : "bar";
  const width = pct > 0 && pct < 0.5 ? 0.5 : Math.round(pct * 10) / 10;
  return `<div class="${cls}" role="meter" aria-valuenow="${used}" aria-valuemin="0" aria-valuemax="${capacity}"><span style="width:${width}%"></span></div>`;
}

function statusBadge(view: NetworkStatusView | undefined): string {
  if (!view || view.state === "not-run") return "";
  if (view.state === "ok") return `<span class="badge ok">STATUS ok</span>`;
  if (view.state === "not-supported") {
    return `<span class="badge neutral" title="STATUS needs cniVersion 1.1.0">no STATUS</span>`;
  }
  const title = `${view.code ?? ""} ${view.msg ?? ""}`.trim();
  return `<span class="badge failed" title="${e(title)}">STATUS ${
    e(String(view.code ?? "failed"))
  }</span>`;
}

function networkCard(network: NetworkSummary, status: NetworkStatusView | undefined): string {
  const chain = network.plugins.map((p) => {
    const cls = p.path === null ? "plugin missing" : p.cnibox ? "plugin cnibox" : "plugin";
    const title = p.path === null ? "not found in the plugin path" : p.path;
    const label = `${p.role === "ipam" ? "ipam: " : ""}${p.type}${p.cnibox ? " · cnibox" : ""}`;
    return `<span class="${cls}" title="${e(title)}">${e(label)}</span>`;
  }).join("");
  const ranges = network.hostLocal.flatMap((hl) =>
    hl.rangeSets.flatMap((set) =>
      set.ranges.map((r) =>
        `<div class="range"><span class="mono">${e(r.subnet)}</span>${
          usageBar(r.used, r.capacity)
        }<span class="muted">${r.used} / ${r.capacity} used · ${r.free} free</span></div>`
      )
    )
  ).join("");
  const problems = network.hostLocal.flatMap((hl) => hl.errors).map((msg) =>
    `<div class="muted">host-local: ${e(msg)}</div>`
  ).join("");
  const shadow = network.shadowedBy
    ? `<span class="badge neutral" title="${e(network.shadowedBy)}">shadowed</span>`
    : "";
  return `<section class="card network" data-network="${e(network.name)}">
<div class="net-head"><span class="name">${e(network.name)}</span><span class="mono muted">${
    e(network.file)
  }</span><span class="muted">cniVersion ${e(network.cniVersion)}</span>${
    statusBadge(status)
  }${shadow}</div>
<div class="chain">${chain}</div>${ranges}${problems}</section>`;
}

function unconfiguredCard(name: string, inv: Inventory): string {
  const leases = inv.leases.filter((l) => l.network === name).length;
  const attachments = inv.attachments.filter((a) => a.network === name).length;
  return `<section class="card network" data-network="${e(name)}">
<div class="net-head"><span class="name">${
    e(name)
  }</span><span class="badge neutral">no config file</span><span class="muted">${leases} leases · ${attachments} cached attachments</span></div></section>`;
}

function age(seconds: number | null): string {
  if (seconds === null) return "";
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function attachmentRow(a: AttachmentStatus): string {
  const ports = a.portMappings.map((p) =>
    `${p.hostIP ? `${p.hostIP}:` : ""}${p.hostPort}→${p.containerPort}/${p.protocol}`
  ).join(", ");
  const ns = a.netnsExists === false
    ? `<span class="badge stale">gone</span>`
    : a.netnsExists === true
    ? `<span class="badge ok">exists</span>`
    : `<span class="badge neutral">unknown</span>`;
  return `<tr class="attachment${a.stale ? " stale" : ""}"><td>${
    e(a.network)
  }</td><td class="mono">${e(a.containerId)}</td><td>${e(a.ifname)}</td><td class="mono">${
    e(a.ips.join(", "))
  }</td><td class="mono">${e(ports)}</td><td class="mono">${e(a.netns)} ${ns}</td><td>${
    e(age(a.ageSeconds))
  }</td></tr>`;
}

/**
 * Renders the dashboard page.
 *
 * @example Usage
 * ```ts ignore
 * const html = renderDashboard({ inventory, now: Date.now() });
 * ```
 */
export function renderDashboard(data: DashboardData): string {
  const inv = data.inventory;
  const staleAttachments = inv.attachments.filter((a) => a.stale).length;
  const staleLeases = inv.leases.filter((l) => l.stale);
  const sum = (n: number, label: string, bad = false) =>
    `<span class="sum"><b${bad && n > 0 ? ' class="bad"' : ""}>${n}</b> ${label}</span>`;
  const configured = new Set(inv.networks.map((n) => n.name));
  // Networks seen only in lease dirs or the cache (Nomad's built-in bridge has no file on disk).
  const unconfigured = [
    ...new Set([...inv.leases, ...inv.attachments].map((x) => x.network)),
  ].filter((name) => !configured.has(name)).sort();
  const cards = [
    ...inv.networks.map((n) => networkCard(n, n.shadowedBy ? undefined : data.statuses?.[n.name])),
    ...unconfigured.map((name) => unconfiguredCard(name, inv)),
  ];
  const networks = cards.length
    ? cards.join("\n")
    : `<p class="empty">No network configurations found.</p>`;
  const attachments = inv.attachments.length
    ? `<table id="attachments"><thead><tr><th>network</th><th>container</th><th>ifname</th><th>addresses</th><th>ports</th><th>netns</th><th>age</th></tr></thead><tbody>
${inv.attachments.map(attachmentRow).join("\n")}
</tbody></table>`
    : `<p class="empty">No cached attachments.</p>`;
  const leaked = staleLeases.length
    ? `<table id="stale-leases"><thead><tr><th>network</th><th>address</th><th>container</th><th>ifname</th><th>why</th><th>data dir</th></tr></thead><tbody>
${
      staleLeases.map((l) =>
        `<tr class="lease stale"><td>${e(l.network)}</td><td class="mono">${
          e(l.ip)
        }</td><td class="mono">${e(l.containerId)}</td><td>${e(l.ifname)}</td><td>${
          l.staleReason === "netns-gone" ? "netns gone" : "no attachment"
        }</td><td class="mono">${e(l.dataDir)}</td></tr>`
      ).join("\n")
    }
</tbody></table>`
    : `<p class="empty">No leaked leases.</p>`;
  const problems = [
    ...inv.configErrors.map((c) => `${c.file}: ${c.error}`),
    ...inv.errors,
  ];
  const errorList = problems.length
    ? `<h2>Problems</h2><ul class="errors">${
      problems.map((p) => `<li class="mono">${e(p)}</li>`).join("")
    }</ul>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>cnibox status</title><style>${STYLE}</style></head>
<body><header><h1>cnibox status</h1>${sum(inv.networks.length, "networks")}${
    sum(inv.attachments.length, "attachments")
  }${sum(inv.leases.length, "leases")}${sum(staleAttachments, "stale attachments", true)}${
    sum(staleLeases.length, "leaked leases", true)
  }</header>
<main>
<h2>Networks</h2>
${networks}
<h2>Attachments</h2>
${attachments}
<h2>Leaked leases</h2>
${leaked}
${errorList}
</main>
<footer>${e(data.version ? `cnibox ${data.version} · ` : "")}generated ${
    e(new Date(data.now).toISOString())
  } · <a href="/metrics">metrics</a> · <a href="/v1/networks">networks</a> · <a href="/v1/attachments">attachments</a> · <a href="/v1/leases">leases</a></footer>
</body></html>
`;
}
