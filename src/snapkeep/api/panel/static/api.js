// The panel's only way to the server: the JSON API as the signed-in user (docs/panel.md).
// The session cookie goes with every request; the CSRF secret goes in the X-CSRF-Token header.

let csrf = "";
export let me = null;

export function setSession(data) {
  csrf = data ? data.csrf : "";
  me = data ? data.user : null;
}

export class SignedOut extends Error {}

async function envelope(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    body = { success: 0, message: `HTTP ${response.status}` };
  }
  if (response.status === 401) {
    setSession(null);
    throw new SignedOut(body.message);
  }
  return body;
}

// Call FUNCTION with PARAMS; resolves to the whole envelope ({success, message, data}).
export async function call(fn, params = {}) {
  const response = await fetch("/", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ function: fn, ...params }),
  });
  return envelope(response);
}

// Like call, but resolves to data and throws an Error carrying the API's message on failure.
export async function data(fn, params = {}) {
  const answer = await call(fn, params);
  if (!answer.success) throw new Error(answer.message);
  return answer.data;
}

export async function resume() {
  const response = await fetch("/ui/session", { credentials: "same-origin" });
  if (response.status !== 200) return false;
  setSession((await response.json()).data);
  return true;
}

export async function signIn(fields) {
  const response = await fetch("/ui/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
  const body = await response.json();
  if (response.status === 200) setSession(body.data);
  return body;
}

export async function signOut() {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  setSession(null);
}

export function downloadLink(groupId) {
  return `/download/${encodeURIComponent(groupId)}?csrf=${encodeURIComponent(csrf)}`;
}

let catalogue = null;
// The parameters of every function, from the server's own OpenAPI document (x-snapkeep-functions).
export async function functions() {
  if (!catalogue) {
    const document = await (await fetch("/openapi.json")).json();
    catalogue = Object.fromEntries(document["x-snapkeep-functions"].map((f) => [f.name, f]));
  }
  return catalogue;
}
