// The snapkeep panel: a hash router over a few pages, each built only from API answers.
import { call, data, resume, signIn, signOut, me, SignedOut } from "./api.js";
import { h, announce, when, bytes, statusBadge, table, progress, groupName, STATUS } from "./dom.js";

const LEVELS = { 1: "Info", 2: "Warning", 3: "Critical" };
import { KINDS, listPage, editPage } from "./objects.js";
import { runsPage, runPage } from "./runs.js";
import { backupsPage, backupPage } from "./backups.js";

const main = () => document.getElementById("main");
let timers = [];

// Poll FN every MS milliseconds while the page stays (a page change stops it) and until FN
// resolves to false (nothing runs any more).
export function every(ms, fn) {
  const page = location.hash;
  let busy = false;
  const id = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      if (location.hash !== page || (await fn()) === false) clearInterval(id);
    } catch (error) {
      clearInterval(id);
      failed(error);
    } finally {
      busy = false;
    }
  }, ms);
  timers.push(id);
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function failed(error) {
  if (error instanceof SignedOut) {
    go("#/signin");
    return;
  }
  show(h("h1", {}, "Something went wrong"), h("p", { role: "alert" }, error.message));
}

// Focus moves to the page only when the user went somewhere, never when a poll redraws it.
let arrived = true;

export function show(...children) {
  const target = main();
  target.replaceChildren(...children.filter((child) => child !== null && child !== undefined));
  const heading = target.querySelector("h1");
  document.title = heading ? `${heading.textContent} · snapkeep` : "snapkeep";
  if (arrived) target.focus();
  arrived = false;
}

export const isRoot = () => me && me.role === "root";
export const isAccount = () => me && me.role === "account";

function nav() {
  const header = document.getElementById("top");
  if (!me) {
    header.replaceChildren(h("p", { class: "brand" }, "snapkeep"));
    return;
  }
  const links = [["#/", "Dashboard"]];
  if (!isAccount()) {
    for (const [kind, spec] of Object.entries(KINDS)) {
      if (spec.roles.includes(me.role)) links.push([`#/list/${kind}`, spec.plural]);
    }
  }
  links.push(["#/runs", "Runs"], ["#/backups", "Backups"]);
  const current = location.hash || "#/";
  header.replaceChildren(
    h("p", { class: "brand" }, "snapkeep"),
    h("nav", { "aria-label": "Main" }, h("ul", {}, links.map(([href, text]) =>
      h("li", {}, h("a", { href, "aria-current": current === href ? "page" : null }, text))))),
    h("p", { class: "who" }, `${me.name} (${me.role}) `,
      h("button", { type: "button", onclick: async () => { await signOut(); go("#/signin"); } }, "Sign out")),
  );
}

function signInPage() {
  const message = h("p", { id: "signin-error", role: "alert" });
  const form = h("form", { "aria-describedby": "signin-error" },
    h("h1", {}, "Sign in"),
    h("p", {}, h("label", { for: "name" }, "User name"), h("input", { id: "name", name: "name", autocomplete: "username" })),
    h("p", {}, h("label", { for: "password" }, "Password"),
      h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" })),
    h("p", {}, h("label", { for: "token" }, "Or an API token (USER:TOKEN)"),
      h("input", { id: "token", name: "token", type: "password", autocomplete: "off" })),
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form));
    const answer = await signIn(fields.token ? { token: fields.token } : { name: fields.name, password: fields.password });
    if (answer.success) go("#/");
    else message.textContent = answer.message;
  });
  show(form);
}

async function dashboard(polled = false) {
  const sections = [h("h1", {}, "Dashboard")];
  const groups = (await data("listQueueGroups", { limit: 200 })).groups || [];
  const running = groups.filter((g) => g.status < 100);
  const since = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString();
  const failedRuns = groups.filter((g) => g.status > 100 && (g.ended || g.created || "") >= since)
    .sort((a, b) => ((b.ended || b.created) > (a.ended || a.created) ? 1 : -1));
  const runningList = h("section", { "aria-labelledby": "running-h" }, h("h2", { id: "running-h" }, "Running now"),
    table("Queue groups pending or running", ["Run", "Status", "Progress"],
      running.map((g) => [h("a", { href: `#/run/${g._id}` }, groupName(g)), statusBadge(g.status), progress(g)])));
  sections.push(runningList);
  sections.push(h("section", { "aria-labelledby": "failed-h" }, h("h2", { id: "failed-h" }, "Failed runs"),
    table("Runs that failed or partly failed in the last 7 days, newest first", ["Run", "Status", "Ended"],
      failedRuns.slice(0, 20).map((g) => [h("a", { href: `#/run/${g._id}` }, groupName(g)), statusBadge(g.status), when(g.ended)]))));
  if (!isAccount()) {
    const jobs = (await data("listBackupJobs", { limit: 100 })).jobs || [];
    const latest = {};
    for (const g of groups) {
      if (g.job_id && (!latest[g.job_id] || g.created > latest[g.job_id].created)) latest[g.job_id] = g;
    }
    const lastRun = (job) => {
      const g = latest[job._id];
      return g ? h("a", { href: `#/run/${g._id}`, "aria-label": `last run of ${job.name}: ${STATUS[g.status] || g.status}` },
        statusBadge(g.status)) : "—";
    };
    sections.push(h("section", { "aria-labelledby": "jobs-h" }, h("h2", { id: "jobs-h" }, "Backup jobs"),
      table("Jobs with their last and next run", ["Job", "Last run", "Last status", "Next run", "State"],
        jobs.map((job) => [h("a", { href: `#/edit/jobs/${job._id}` }, job.name), when(job.last_run), lastRun(job),
          when(job.next_run), job.running ? "Running" : job.disabled ? "Disabled" : "Enabled"]))));
    const destinations = (await data("listDestinations", { limit: 100 })).destinations || [];
    sections.push(h("section", { "aria-labelledby": "dest-h" }, h("h2", { id: "dest-h" }, "Destinations"),
      table("Destinations and their disk usage", ["Destination", "Type", "Disk usage"],
        destinations.map((d) => [d.name, d.type, diskUsage(d)]))));
  } else {
    const backups = (await data("listBackups", { limit: 5 })).backups || [];
    sections.push(h("section", { "aria-labelledby": "recent-h" }, h("h2", { id: "recent-h" }, "Latest backups"),
      table("Your newest backups", ["Account", "Created", "Size"],
        backups.map((b) => [h("a", { href: `#/backup/${b._id}` }, b.account), when(b.created), bytes(b.size)]))));
  }
  if (isRoot()) {
    const alerts = (await data("listAlerts", { limit: 20 })).alerts || [];
    const clear = alerts.length ? h("button", { type: "button", onclick: async () => {
      announce((await call("clearAlerts", { _id: alerts.map((a) => a._id) })).message);
      await dashboard();
    } }, "Clear these alerts") : null;
    sections.push(h("section", { "aria-labelledby": "alerts-h" }, h("h2", { id: "alerts-h" }, "Alerts"), clear,
      table("Open alerts, newest first", ["When", "Level", "Alert"], alerts.map((a) => [when(a.created), LEVELS[a.level] || a.level,
        h("span", {}, h("strong", {}, a.title), ` ${a.message || ""}`)]))));
  }
  show(...sections);
  if (running.length && !polled) every(2000, () => dashboard(true));
  return running.length > 0;
}

function diskUsage(destination) {
  const usage = destination.disk_usage || {};
  if (!usage.total) return "—";
  const percent = Math.round((100 * usage.usage) / usage.total);
  return `${bytes(usage.usage)} used of ${bytes(usage.total)} (${percent}%), ${bytes(usage.free)} free`;
}

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  arrived = true;
  const hash = location.hash || "#/";
  const [, page, kind, ident] = hash.split("/");
  try {
    if (!me && page !== "signin" && !(await resume())) {
      nav();
      go("#/signin");
      return;
    }
    nav();
    if (page === "signin") signInPage();
    else if (page === "list" && KINDS[kind]) await listPage(kind);
    else if (page === "edit" && KINDS[kind]) await editPage(kind, ident);
    else if (page === "runs") await runsPage();
    else if (page === "run") await runPage(kind);
    else if (page === "backups") await backupsPage();
    else if (page === "backup") await backupPage(kind);
    else await dashboard();
  } catch (error) {
    failed(error);
  }
}

window.addEventListener("hashchange", route);
route();

export { call, data, announce };
