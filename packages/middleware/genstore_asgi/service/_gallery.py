"""The gallery page: a static page whose script calls the API with the user's bearer token."""

from __future__ import annotations

__all__ = ["GALLERY_HTML"]

GALLERY_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>genstore gallery</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; background: #fafafa; color: #222; }
  header { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
  input, select, button { font: inherit; padding: .3rem .5rem; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr));
          gap: 1rem; margin-top: 1.5rem; }
  figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }
  figure img { width: 100%; aspect-ratio: 1; object-fit: contain; background: #eee; }
  figcaption { font-size: .85rem; margin-top: .3rem; overflow-wrap: anywhere; }
  .status { font-size: .75rem; color: #555; }
  #message { color: #a00; margin-top: 1rem; }
</style>
</head>
<body>
<h1>Gallery</h1>
<header>
  <label>Token <input id="token" type="password" size="40" autocomplete="off"></label>
  <label>Status <select id="status">
    <option value="">all</option><option>generated</option><option>printed</option>
    <option>ordered</option><option>deleted</option></select></label>
  <button id="load">Show</button>
  <span id="pages"></span>
</header>
<div id="message" role="status"></div>
<div id="grid"></div>
<script>
const $ = (id) => document.getElementById(id);
// A token may arrive in the fragment (#token=...), which browsers never send to the server.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) { history.replaceState(null, "", location.pathname); }
$("token").value = fromHash || sessionStorage.getItem("genstore-token") || "";
let page = 1;
async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + $("token").value } });
  if (!r.ok) {
    let reason = r.statusText;
    try { reason = (await r.json()).error || reason; } catch (e) {}
    throw new Error(r.status + " " + reason);
  }
  return r;
}
async function load() {
  sessionStorage.setItem("genstore-token", $("token").value);
  $("message").textContent = "";
  const grid = $("grid");
  grid.replaceChildren();
  try {
    const status = $("status").value;
    const q = "/api/images?limit=24&page=" + page + (status ? "&status=" + status : "");
    const body = await (await api(q)).json();
    $("pages").textContent = "page " + body.pagination.page + " / " +
      Math.max(1, body.pagination.pages) + " (" + body.pagination.total + " images)";
    for (const image of body.data) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = image.prompt;
      const blob = await (await api("/api/images/" + image.image_id + "/file")).blob();
      img.src = URL.createObjectURL(blob);
      const cap = document.createElement("figcaption");
      cap.textContent = image.prompt;
      const st = document.createElement("div");
      st.className = "status";
      st.textContent = image.status + " - " + image.width + "x" + image.height + " - " +
        new Date(image.created_at).toLocaleString();
      cap.appendChild(st);
      fig.append(img, cap);
      grid.appendChild(fig);
    }
    if (!body.data.length) { $("message").textContent = "No images yet."; }
  } catch (e) {
    $("message").textContent = e.message;
  }
}
$("load").addEventListener("click", () => { page = 1; load(); });
if ($("token").value) { load(); }
</script>
</body>
</html>
"""
