"""The ``/docs`` page: plain HTML and a little JavaScript that lists ``/openapi.json`` (no CDN, no build step)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>x402 service API</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; text-transform: capitalize; }
details { margin: .4rem 0; border: 1px solid #e3e3e3; border-radius: 6px; padding: .4rem .8rem; }
summary { cursor: pointer; } code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { background: #f6f6f6; padding: .6rem; overflow: auto; border-radius: 4px; }
.m { display: inline-block; min-width: 4.2rem; font-weight: 600; text-transform: uppercase; }
.get { color: #0a6; } .post { color: #06c; } .delete { color: #c30; } .patch { color: #a60; }
.lock { color: #888; font-size: 12px; }
</style>
</head>
<body>
<h1 id="title">x402 service API</h1>
<p id="desc"></p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1).
Authenticate with <code>Authorization: Bearer x402_live_...</code> or <code>X-API-Key</code>.</p>
<div id="ops">Loading…</div>
<script>
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description || "";
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags || ["other"])[0];
      (byTag[tag] = byTag[tag] || []).push([method, path, op]);
    }
  }
  const root = document.getElementById("ops");
  root.textContent = "";
  for (const tag of Object.keys(byTag).sort()) {
    root.appendChild(el("h2", {}, tag));
    for (const [method, path, op] of byTag[tag]) {
      const d = el("details");
      const s = el("summary");
      s.appendChild(el("span", {class: "m " + method}, method));
      s.appendChild(el("code", {}, path));
      s.appendChild(document.createTextNode(" — " + (op.summary || "")));
      if (op.security) s.appendChild(el("span", {class: "lock"}, " (API key)"));
      d.appendChild(s);
      d.appendChild(el("pre", {}, JSON.stringify(op, null, 2)));
      root.appendChild(d);
    }
  }
}).catch(err => { document.getElementById("ops").textContent = "could not load openapi.json: " + err; });
</script>
</body>
</html>
"""
