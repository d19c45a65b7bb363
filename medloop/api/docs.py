"""A self-contained API docs page (no CDN, works offline): it reads ``/openapi.json`` and lists
every operation with its parameters, body and responses. FastAPI's default ``/docs`` loads
Swagger UI from a CDN, so it is switched off."""

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medloop API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}
h2{border-bottom:1px solid #ccc;margin-top:2rem} details{margin:.4rem 0;padding:.3rem .6rem;
border:1px solid #ddd;border-radius:4px} summary{cursor:pointer} code,pre{background:#f5f5f5}
pre{padding:.5rem;overflow:auto;max-height:25rem} .m{font-weight:bold;display:inline-block;
width:4.5rem} .get{color:#06c} .post{color:#080}
</style></head><body>
<h1>medloop API</h1>
<p>Machine-readable schema: <a href="openapi.json">openapi.json</a>. Authenticate with
<code>Authorization: Bearer &lt;token&gt;</code> (<code>medloop token --help</code>).
Writes need <code>If-Match</code> with the list's ETag; every POST accepts
<code>Idempotency-Key</code>; errors are <code>application/problem+json</code>.</p>
<div id="ops">loading openapi.json …</div>
<script>
fetch("openapi.json").then(r => r.json()).then(spec => {
  const root = document.getElementById("ops"); root.textContent = "";
  const byTag = {};
  for (const [path, ops] of Object.entries(spec.paths))
    for (const [method, op] of Object.entries(ops))
      (byTag[(op.tags || ["other"])[0]] ||= []).push([method, path, op]);
  for (const [tag, ops] of Object.entries(byTag)) {
    const h = document.createElement("h2"); h.textContent = tag; root.append(h);
    for (const [method, path, op] of ops) {
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.innerHTML = `<span class="m ${method}">${method.toUpperCase()}</span>`;
      s.append(document.createTextNode(`${path} — ${op.summary || ""}`));
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify({parameters: op.parameters, requestBody: op.requestBody,
        responses: op.responses}, null, 2);
      d.append(s, pre); root.append(d);
    }
  }
  const c = document.createElement("details");
  c.innerHTML = "<summary>schemas</summary>";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(spec.components, null, 2); c.append(pre); root.append(c);
});
</script></body></html>
"""
