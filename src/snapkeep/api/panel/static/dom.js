// Small DOM helpers: elements are built with textContent only (no innerHTML), so nothing the API
// returns is ever read as markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function announce(text) {
  const status = document.getElementById("status");
  status.textContent = "";
  setTimeout(() => { status.textContent = text; }, 50);
}

export function when(stamp) {
  if (!stamp) return "—";
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? String(stamp) : date.toLocaleString();
}

export function bytes(count) {
  if (count === null || count === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export const STATUS = { 1: "Pending", 2: "Processing", 100: "Completed", 101: "Partially Completed",
  102: "Failed", 103: "Aborted", 104: "Never Finished" };

export function statusBadge(code) {
  const label = STATUS[code] || String(code ?? "—");
  const tone = code >= 102 ? "bad" : code === 101 ? "warn" : code === 100 ? "good" : "busy";
  return h("span", { class: `badge ${tone}` }, label);
}

export function table(caption, headers, rows) {
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows.length ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
      : h("tr", {}, h("td", { colspan: String(headers.length) }, "None."))));
}

export function progress(group) {
  const done = group.status >= 100 ? 100 : Number((group.progress || {}).percentage || 0);
  const value = Math.max(0, Math.min(100, done));
  return h("progress", { max: "100", value: String(value), "aria-label": `progress of ${groupName(group)}` },
    `${value}%`);
}

export function groupName(group) {
  const data = group.data || {};
  return `${group.type_name || "Run"}: ${data.name || data.job_name || group._id}`;
}
