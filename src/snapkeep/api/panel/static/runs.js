// Runs: queue groups with live progress (polled), their items and log, stop and rerun failed.
import { data, call, downloadLink } from "./api.js";
import { h, announce, when, statusBadge, table, progress, groupName, STATUS } from "./dom.js";
import { show, go, every, isAccount } from "./app.js";

export async function runsPage(polled = false) {
  const groups = (await data("listQueueGroups", { limit: 200 })).groups || [];
  show(h("h1", {}, "Runs"),
    table("Queue groups, newest first", ["Run", "Status", "Progress", "Started", "Ended"],
      groups.map((g) => [h("a", { href: `#/run/${g._id}` }, groupName(g)), statusBadge(g.status), progress(g), when(g.started), when(g.ended)])));
  const running = groups.some((g) => g.status < 100);
  if (running && !polled) every(2000, () => runsPage(true));
  return running;
}

export async function runPage(ident, before = null) {
  const group = await data("getQueueGroup", { _id: ident });
  if (before !== null && before < 100 && group.status >= 100) announce(`${groupName(group)} finished: ${STATUS[group.status] || group.status}`);
  const items = (await data("listQueueItems", { group_id: ident, limit: 500 })).items || [];
  let log = "";
  if (group.log_id) {
    const answer = await call("getLog", { _id: group.log_id, content: 1 });
    if (answer.success) log = answer.data.content || "";
  }
  const status = h("p", { role: "status", id: "run-status" });
  const act = async (fn) => {
    const answer = await call(fn, { _id: ident });
    status.textContent = answer.message;
    announce(answer.message);
    if (answer.success && fn === "rerunFailedQueueGroup") go(`#/run/${answer.data._id}`);
  };
  const controls = [];
  if (!isAccount() && group.status < 100) controls.push(h("button", { type: "button", onclick: () => act("stopQueueGroup") }, "Stop"));
  if (!isAccount() && (group.status === 101 || group.status === 102)) controls.push(h("button", { type: "button", onclick: () => act("rerunFailedQueueGroup") }, "Rerun failed"));
  if (group.type === 4 && group.status === 100) controls.push(h("a", { href: downloadLink(ident), class: "button", download: "" }, "Download the file"));
  show(
    h("h1", {}, groupName(group)),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", { id: "run-state" }, statusBadge(group.status)),
      h("dt", {}, "Progress"), h("dd", {}, progress(group)),
      h("dt", {}, "Started"), h("dd", {}, when(group.started)),
      h("dt", {}, "Ended"), h("dd", {}, when(group.ended))),
    h("p", { class: "actions" }, controls), status,
    table("Items of this run", ["Item", "Status"], items.map((item) => [item.name || (item.data || {}).name || item._id, statusBadge(item.status)])),
    h("section", { "aria-labelledby": "log-h" }, h("h2", { id: "log-h" }, "Log"),
      h("pre", { class: "log", tabindex: "0", "aria-label": "run log" }, log || "No log yet.")),
  );
  if (group.status < 100 && before === null) {
    let last = group.status;
    every(1500, async () => {
      last = await runPage(ident, last);
      return last < 100;
    });
  }
  return group.status;
}
