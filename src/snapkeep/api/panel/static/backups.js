// Backups and restore: the backups the user may see (per job and per account), one backup's items,
// and a restore (to the original place or another folder, with an overwrite policy) or a download.
import { data, call, me } from "./api.js";
import { h, when, bytes, table, announce } from "./dom.js";
import { show, go } from "./app.js";
import { fieldOf } from "./objects.js";

export async function backupsPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filter = params.get("account") || "";
  const backups = (await data("listBackups", filter ? { account_id: filter, limit: 500 } : { limit: 500 })).backups || [];
  const search = h("form", { role: "search", class: "inline" },
    h("label", { for: "account-filter" }, "Account or job"),
    h("input", { id: "account-filter", name: "account", value: filter }),
    h("button", { type: "submit" }, "Show"));
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    go(`#/backups?account=${encodeURIComponent(search.account.value)}`);
  });
  show(h("h1", {}, "Backups"), search,
    table("Backups, newest first", ["Backup", "Job", "Created", "Size", "Destination"],
      backups.map((b) => [h("a", { href: `#/backup/${b._id}` }, b.account || b.job_name || b._id), b.job_name, when(b.created), bytes(b.size), b.destination_name])));
}

// Each component of an account backup and the item permission that covers it (docs/users.md);
// "config" is for root and resellers only.
const COMPONENT_ITEMS = { homedir: "files", databases: "databases", database_users: "databases", email: "email",
  cron: "cron", domains: "dns", certificates: "certificates", ftp: "ftp" };

function allowed(item, action) {
  if (me.role === "root") return true;
  const covered = COMPONENT_ITEMS[item.name];
  if (!covered) return me.role !== "account" || item.name !== "config";
  return Boolean(((me.permissions || {})[action] || {})[covered] ?? 1);
}

export async function backupPage(ident) {
  const all = (await data("getBackupItems", { _id: ident })).items || [];
  const items = all.filter((item) => allowed(item, "restore") || allowed(item, "download"));
  const whole = items.length === all.length;
  const message = h("p", { role: "alert", id: "restore-message" });
  const browser = h("section", { id: "browser", "aria-labelledby": "browser-h", hidden: true });
  const choices = h("fieldset", {}, h("legend", {}, "What to restore"),
    items.map((item, index) => h("div", { class: "choice" },
      h("input", { type: "checkbox", id: `item-${index}`, name: "items", value: item._id }),
      h("label", { for: `item-${index}` }, `${item.name}${item.failed && item.failed.length ? " (some parts failed)" : ""}`),
      h("button", { type: "button", class: "small", "aria-controls": "browser", "aria-label": `Browse ${item.name}`,
        onclick: () => browse(browser, item, index, "/", "") }, "Browse"))));
  const field = (id, label, help, control) => h("div", { class: "field" },
    h("label", { for: id }, label), control, h("small", { id: `${id}-help` }, help), h("span", { id: `${id}-error`, class: "error" }));
  const form = h("form", { "aria-describedby": "restore-message" },
    h("h1", {}, "Restore from backup"),
    h("p", {}, `Backup ${ident}`),
    choices,
    field("paths", "Only these paths", "One per line, relative to the chosen item, for example /docs/report.txt or /mariadb/shop; empty restores the whole item. A path ending in / is a folder.",
      h("textarea", { id: "paths", name: "paths", rows: "3", "aria-describedby": "paths-help paths-error" })),
    field("target", "Restore into folder", "Absolute folder to restore below; empty restores to the original place.",
      h("input", { id: "target", name: "target", "aria-describedby": "target-help target-error" })),
    field("overwrite", "When a file exists", "never keeps what is there (the default for the original place).",
      h("select", { id: "overwrite", name: "overwrite", "aria-describedby": "overwrite-help overwrite-error" },
        ["never", "if-newer", "if-changed", "always"].map((p) => h("option", { value: p }, p)))),
    h("div", { class: "choice" }, h("input", { type: "checkbox", id: "dry_run", name: "dry_run" }),
      h("label", { for: "dry_run" }, "Dry run: only list what would change")),
    h("p", { class: "actions" },
      h("button", { type: "submit", name: "restore", value: "2" }, "Restore"),
      h("button", { type: "submit", name: "download", value: "4" }, "Download")),
    message);
  form.insertBefore(browser, choices.nextSibling);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const type = Number(event.submitter ? event.submitter.value : 2);
    const chosen = [...form.querySelectorAll("input[name=items]:checked")].map((box) => box.value);
    const paths = form.paths.value.split("\n").map((line) => line.trim()).filter(Boolean);
    // the whole backup by its ID, or only the chosen items (an account owner may not restore "config")
    const params = { type };
    if (chosen.length) params.items = chosen;
    else if (whole) params.snapshot_id = ident;
    else {
      message.textContent = "items: choose what to restore";
      return;
    }
    if (paths.length) {
      if (chosen.length !== 1) {
        message.textContent = "paths: choose exactly one item to restore paths from";
        return;
      }
      params.items = chosen;
      params.files = { [chosen[0]]: Object.fromEntries(paths.map((p) => [p.replace(/\/$/, "") || "/", p.endsWith("/") ? "Directory" : "File"])) };
    }
    const options = {};
    if (type === 2) {
      if (form.target.value) options.target = form.target.value;
      options.overwrite = form.overwrite.value;
      if (form.dry_run.checked) options.dry_run = 1;
    }
    if (Object.keys(options).length) params.options = options;
    const answer = await call("addQueueItems", params);
    message.textContent = answer.message;
    if (answer.success) {
      go(`#/run/${answer.data._id}`);
      return;
    }
    const name = fieldOf(answer.message);
    const input = name === "options" ? form.target : form.querySelector(`[name="${name}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  });
  show(form);
}

// One folder of one item, read lazily through listBackupFiles; choosing an entry adds its path to
// "Only these paths" (and chooses that item alone).
async function browse(section, item, index, path, search) {
  const listing = await data("listBackupFiles", { _id: item._id, path, search, limit: 1000 });
  const paths = document.getElementById("paths");
  const chosen = () => new Set(paths.value.split("\n").map((line) => line.trim()).filter(Boolean));
  const toggle = (entry, on) => {
    const set = chosen();
    const value = entry.type === "Directory" ? `${entry.path}/` : entry.path;
    if (on) set.add(value); else set.delete(value);
    paths.value = [...set].join("\n");
    document.querySelectorAll("input[name=items]").forEach((box, at) => { box.checked = at === index; });
  };
  const crumbs = [["/", "/"]];
  let so_far = "";
  for (const part of listing.path.split("/").filter(Boolean)) {
    so_far += `/${part}`;
    crumbs.push([so_far, part]);
  }
  const searchBox = h("input", { id: "file-search", type: "search", value: search });
  const searchForm = h("div", { class: "inline", role: "search" },
    h("label", { for: "file-search" }, "Find a file name below this folder"), searchBox,
    h("button", { type: "button", onclick: () => browse(section, item, index, listing.path, searchBox.value) }, "Find"));
  searchBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); browse(section, item, index, listing.path, searchBox.value); }
  });
  const selected = chosen();
  const rows = listing.entries.map((entry, at) => {
    const id = `entry-${at}`;
    const value = entry.type === "Directory" ? `${entry.path}/` : entry.path;
    const box = h("input", { type: "checkbox", id, checked: selected.has(value), onchange: (event) => toggle(entry, event.target.checked) });
    const label = h("label", { for: id, class: "visually-hidden" }, `Choose ${entry.path}`);
    const name = entry.type === "Directory"
      ? h("button", { type: "button", class: "link", onclick: () => browse(section, item, index, entry.path, "") }, `${search ? entry.path : entry.name}/`)
      : (search ? entry.path : entry.name);
    return [h("span", {}, box, label), name, entry.type, entry.type === "Directory" ? "" : bytes(entry.size)];
  });
  section.hidden = false;
  section.replaceChildren(
    h("h2", { id: "browser-h", tabindex: "-1" }, `Files in ${item.name}`),
    h("nav", { "aria-label": "Folder" }, h("ol", { class: "crumbs" }, crumbs.map(([to, text]) =>
      h("li", {}, h("button", { type: "button", class: "link", "aria-current": to === listing.path ? "location" : null,
        onclick: () => browse(section, item, index, to, "") }, text))))),
    searchForm,
    table(search ? `Names containing "${search}" below ${listing.path}` : `Entries of ${listing.path}`,
      ["Choose", "Name", "Type", "Size"], rows),
    h("p", {}, listing.total > listing.entries.length ? `Showing ${listing.entries.length} of ${listing.total}.` : ""));
  section.querySelector("h2").focus();
  announce(`${listing.path}: ${listing.total} entries`);
}
