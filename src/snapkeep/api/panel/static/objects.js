// Jobs, destinations, schedules, hooks and filters: one list page and one form page for all five,
// the form's fields generated from the function's own parameters (the server's OpenAPI document).
import { data, call, functions, me } from "./api.js";
import { h, announce, when, table } from "./dom.js";
import { show, go } from "./app.js";

export const KINDS = {
  jobs: { label: "Backup Job", plural: "Jobs", noun: "jobs", list: "listBackupJobs", get: "getBackupJob",
    manage: "manageBackupJob", remove: "deleteBackupJob", duplicate: "duplicateBackupJob",
    run: "runBackupJobManually", roles: ["root", "reseller"] },
  destinations: { label: "Destination", plural: "Destinations", noun: "destinations", list: "listDestinations",
    get: "getDestination", manage: "manageDestination", remove: "deleteDestination",
    validate: "validateDestination", roles: ["root", "reseller"] },
  schedules: { label: "Schedule", plural: "Schedules", noun: "schedules", list: "listSchedules", get: "getSchedule",
    manage: "manageSchedule", remove: "deleteSchedule", roles: ["root", "reseller"] },
  hooks: { label: "Hook", plural: "Hooks", noun: "hooks", list: "listHooks", get: "getHook", manage: "manageHook",
    remove: "deleteHook", roles: ["root"] },
  filters: { label: "Account Filter", plural: "Filters", noun: "filters", list: "listAccountFilters",
    get: "getAccountFilter", manage: "manageAccountFilter", remove: "deleteAccountFilter", roles: ["root", "reseller"] },
};

const HIDDEN = new Set(["action", "_id"]);

function rows(answer) {
  return Object.values(answer).find(Array.isArray) || [];
}

// May the signed-in user create, change and delete objects of KIND? (A reseller manages
// destinations only when root granted it; the API refuses it anyway.)
export function mayManage(kind) {
  if (me.role === "root") return true;
  if (kind === "destinations") return me.role === "reseller" && Boolean(me.manage_destinations);
  return KINDS[kind].roles.includes(me.role);
}

export async function listPage(kind, note = "") {
  const spec = KINDS[kind];
  const manage = mayManage(kind);
  const items = rows(await data(spec.list, { limit: 500 }));
  const status = h("p", { role: "status", id: "list-status" }, note);
  const act = async (fn, params, done) => {
    const answer = await call(fn, params);
    const group = /queue group ([0-9a-f]{24})/.exec(answer.message || "");
    status.replaceChildren(answer.message, group ? " " : "", group ? h("a", { href: `#/run/${group[1]}` }, "Follow the run") : "");
    announce(answer.message);
    if (answer.success && done) await listPage(kind, answer.message);
  };
  const buttons = (item) => {
    const list = [h("a", { href: `#/edit/${kind}/${item._id}`, "aria-label": `${manage ? "Edit" : "View"} ${item.name}` }, manage ? "Edit" : "View")];
    if (kind === "jobs") list.push(h("a", { href: `#/backups?account=${item._id}`, "aria-label": `Backups of ${item.name}` }, "Backups"));
    if (!manage) return h("span", { class: "actions" }, list);
    if (spec.duplicate) list.push(h("button", { type: "button", "aria-label": `Duplicate ${item.name}`, onclick: () => act(spec.duplicate, { _id: item._id }, true) }, "Duplicate"));
    if (spec.run) list.push(h("button", { type: "button", "aria-label": `Run ${item.name} now`, onclick: () => act(spec.run, { _id: item._id }) }, "Run now"));
    if ("disabled" in item) {
      list.push(h("button", { type: "button", "aria-label": `${item.disabled ? "Enable" : "Disable"} ${item.name}`, onclick: () => act(spec.manage, { action: "modify", _id: item._id, disabled: item.disabled ? 0 : 1 }, true) },
        item.disabled ? "Enable" : "Disable"));
    }
    list.push(h("button", { type: "button", class: "danger", "aria-label": `Delete ${item.name}`, onclick: () => {
      if (confirm(`Delete ${spec.label} "${item.name}"? This cannot be undone.`)) act(spec.remove, { _id: item._id }, true);
    } }, "Delete"));
    return h("span", { class: "actions" }, list);
  };
  show(
    h("h1", {}, spec.plural),
    manage ? h("p", {}, h("a", { href: `#/edit/${kind}/new`, class: "button" }, `New ${spec.label}`)) : null,
    status,
    table(`${spec.plural} you can see`, ["Name", "Details", "Actions"], items.map((item) => [
      item.name, summary(kind, item), buttons(item)])),
  );
}

function summary(kind, item) {
  if (kind === "jobs") return `${item.type === 1 ? "Accounts" : "Directories"}, last run ${when(item.last_run)}${item.disabled ? ", disabled" : ""}`;
  if (kind === "destinations") return `${item.type}${item.disabled ? ", disabled" : ""}`;
  return item.type_name || item.script || "";
}

// Parameters that name other objects: chosen from a list instead of typed as IDs.
const PICKERS = { destination: "listDestinations" };

async function pickerOptions(parameters) {
  const found = {};
  for (const parameter of parameters) {
    const fn = PICKERS[parameter.name];
    if (fn && parameter.type === "array") found[parameter.name] = rows(await data(fn, { limit: 500 }));
  }
  return found;
}

function inputFor(parameter, value, options) {
  const id = `field-${parameter.name}`;
  const described = `${id}-help ${id}-error`;
  let control;
  if (options) {
    const chosen = new Set(Array.isArray(value) ? value.map((v) => (typeof v === "object" ? v._id : v)) : []);
    return h("fieldset", { class: "field", "aria-describedby": described, "data-picker": parameter.name },
      h("legend", {}, parameter.name.replaceAll("_", " ")),
      options.length ? options.map((option, index) => h("div", { class: "choice" },
        h("input", { type: "checkbox", id: `${id}-${index}`, value: option._id, checked: chosen.has(option._id),
          "data-type": "pick", "data-field": parameter.name }),
        h("label", { for: `${id}-${index}` }, option.name))) : h("p", {}, "None yet."),
      h("small", { id: `${id}-help` }, parameter.description || ""),
      h("span", { id: `${id}-error`, class: "error" }));
  }
  if (parameter.type === "boolean") {
    control = h("input", { id, name: parameter.name, type: "checkbox", checked: Boolean(value), "aria-describedby": described });
  } else if (parameter.type === "array" || parameter.type === "object" || parameter.type === "any") {
    let text = "";
    if (Array.isArray(value) && value.every((v) => typeof v !== "object")) text = value.join("\n");
    else if (value !== undefined && value !== null && !(Array.isArray(value) && !value.length)) text = JSON.stringify(value, null, 1);
    control = h("textarea", { id, name: parameter.name, rows: "3", "aria-describedby": described });
    control.value = text;
  } else {
    const secret = parameter.name === "password";
    control = h("input", { id, name: parameter.name, type: secret ? "password" : parameter.type === "integer" ? "number" : "text",
      autocomplete: secret ? "new-password" : "off", "aria-describedby": described });
    control.value = value === undefined || value === null ? "" : String(value);
  }
  control.dataset.type = parameter.type;
  return h("div", { class: "field" },
    h("label", { for: id }, parameter.name.replaceAll("_", " ")),
    control,
    h("small", { id: `${id}-help` }, parameter.description || ""),
    h("span", { id: `${id}-error`, class: "error" }));
}

function valueOf(control) {
  const text = control.value;
  switch (control.dataset.type) {
    case "boolean": return control.checked ? 1 : 0;
    case "integer": return text === "" ? undefined : Number(text);
    case "array":
      if (text.trim().startsWith("[")) return JSON.parse(text);
      return text.split("\n").map((line) => line.trim()).filter(Boolean);
    case "object": case "any":
      if (!text.trim()) return undefined;
      try { return JSON.parse(text); } catch { return text; }
    default: return text === "" ? undefined : text;
  }
}

// "destination[1]: no such destination" -> the field "destination".
export function fieldOf(message) {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)(\[|:)/.exec(message || "");
  return match ? match[1] : null;
}

export async function editPage(kind, ident) {
  const spec = KINDS[kind];
  const creating = ident === "new";
  const stored = creating ? {} : await data(spec.get, { _id: ident });
  const parameters = (await functions())[spec.manage].parameters
    .filter((p) => !HIDDEN.has(p.name) && (p.name !== "owner" || me.role === "root"));
  const pickers = await pickerOptions(parameters);
  const controls = parameters.map((p) => inputFor(p, stored[p.name], pickers[p.name]));
  const message = h("p", { role: "alert", id: "form-message" });
  const form = h("form", { "aria-describedby": "form-message", novalidate: true },
    h("h1", {}, creating ? `New ${spec.label}` : `${spec.label} ${stored.name}`),
    controls,
    h("p", { class: "actions" }, mayManage(kind) ? h("button", { type: "submit" }, creating ? "Create" : "Save") : null,
      spec.validate && !creating ? h("button", { type: "button", id: "validate", onclick: async () => {
        const answer = await call(spec.validate, { _id: ident });
        message.textContent = answer.message;
      } }, "Validate destination") : null,
      h("a", { href: `#/list/${kind}` }, "Back to the list")),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelectorAll(".error").forEach((span) => { span.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const params = { action: creating ? "create" : "modify" };
    if (!creating) params._id = ident;
    for (const field of Object.keys(pickers)) {
      params[field] = [...form.querySelectorAll(`input[data-field="${field}"]:checked`)].map((box) => box.value);
    }
    for (const control of form.querySelectorAll("input[name], textarea[name]")) {
      try {
        const value = valueOf(control);
        if (value !== undefined) params[control.name] = value;
      } catch (error) {
        message.textContent = `${control.name}: ${error.message}`;
        return;
      }
    }
    const answer = await call(spec.manage, params);
    message.textContent = answer.message;
    if (answer.success) {
      announce(answer.message);
      go(`#/edit/${kind}/${answer.data._id}`);
      return;
    }
    const field = fieldOf(answer.message);
    const control = field && (form.querySelector(`[name="${field}"]`) || form.querySelector(`[data-field="${field}"]`));
    if (control) {
      control.setAttribute("aria-invalid", "true");
      document.getElementById(`field-${field}-error`).textContent = answer.message;
      control.focus();
    }
  });
  show(form);
  if (!creating) document.title = `${spec.label} ${stored.name} · snapkeep`;
}
