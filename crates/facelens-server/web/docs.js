// The API reference: rendered in the browser from /openapi.json, so it always describes the
// running binary. Text from the document is inserted with textContent only.
"use strict";

(() => {
  const doc = document.getElementById("doc");
  const toc = document.getElementById("toc");

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  let spec = null;

  // Descriptions come from doc comments: show `code` spans as code, everything else as text.
  function rich(tag, cls, text) {
    const e = el(tag, { class: cls });
    String(text || "").split("`").forEach((part, i) => {
      if (part) e.append(i % 2 ? el("code", { text: part }) : document.createTextNode(part));
    });
    return e;
  }

  function resolve(schema) {
    let s = schema || {};
    for (let i = 0; i < 10 && s.$ref; i++) {
      const name = s.$ref.split("/").pop();
      s = (spec.components && spec.components.schemas && spec.components.schemas[name]) || {};
    }
    return s;
  }

  function refName(schema) {
    return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
  }

  // A short type text: "string", "integer | null", "array of PointSchema", "LabelSchema"...
  function typeText(schema) {
    if (!schema) return "any";
    const r = refName(schema);
    if (r) return r;
    if (schema.oneOf || schema.anyOf) {
      return (schema.oneOf || schema.anyOf).map(typeText).join(" | ");
    }
    let t = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "object";
    if (schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
      t = t.replace("array", `array of ${typeText(schema.items)}`);
    }
    if (schema.format) t += ` (${schema.format})`;
    return t;
  }

  // Properties of an object schema, one level of nesting shown inline.
  function schemaTable(schema, depth) {
    const s = resolve(schema);
    const props = s.properties || {};
    const required = new Set(s.required || []);
    const table = el("table", { class: "schema" },
      el("thead", {}, el("tr", {}, el("th", { text: "field" }), el("th", { text: "type" }), el("th", { text: "description" }))));
    const body = el("tbody");
    const add = (name, p, nested) => {
      const name_td = el("td", {}, name);
      if (required.has(name) && !nested) name_td.append(el("span", { class: "req", text: "required" }));
      body.append(el("tr", { class: nested ? "nested" : null }, name_td,
        el("td", {}, el("span", { class: "type", text: typeText(p) })),
        rich("td", null, p.description || resolve(p).description || "")));
    };
    for (const [name, p] of Object.entries(props)) {
      add(name, p, false);
      const inner = resolve(p.type === "array" ? p.items : (p.oneOf || [p]).find((x) => x.$ref) || p);
      if (depth < 1 && inner.properties && refName(p.type === "array" ? p.items : p) !== null) {
        for (const [n2, p2] of Object.entries(inner.properties)) add(`${name}${p.type === "array" ? "[]" : ""}.${n2}`, p2, true);
      }
    }
    if (!Object.keys(props).length) {
      body.append(el("tr", {}, el("td", { colspan: "3", text: typeText(schema) })));
    }
    table.append(body);
    return table;
  }

  function opId(method, path) {
    return `op-${method}-${path.replace(/[^a-zA-Z0-9]+/g, "-")}`;
  }

  function tryIt(method, path, op) {
    const box = el("div", { class: "tryit" }, el("h4", { text: "Try it" }));
    const content = op.requestBody && op.requestBody.content ? op.requestBody.content : null;
    const ctype = content ? Object.keys(content)[0] : null;
    const schema = ctype ? resolve(content[ctype].schema) : null;
    const inputs = {};
    const grid = el("div", { class: "grid" });
    if (schema && schema.properties) {
      for (const [name, p] of Object.entries(schema.properties)) {
        const input = el("input", { type: name === "key" ? "password" : "text", autocomplete: "off", spellcheck: "false",
          placeholder: typeText(p) });
        inputs[name] = { input, schema: resolve(p) };
        grid.append(el("label", { class: "field" }, el("span", { text: name }), input));
      }
    }
    const keyInput = el("input", { type: "password", autocomplete: "off", placeholder: "sent as Authorization: Bearer" });
    if (!inputs.key && op.security) {
      grid.append(el("label", { class: "field" }, el("span", { text: "API key" }), keyInput));
    }
    box.append(grid);
    const status = el("span", { class: "resp-status muted" });
    const out = el("pre", { class: "code", hidden: "" });
    const send = el("button", { type: "button", text: `Send ${method.toUpperCase()} ${path}` });
    send.addEventListener("click", async () => {
      const headers = {};
      const fields = {};
      for (const [name, { input, schema: ps }] of Object.entries(inputs)) {
        const v = input.value.trim();
        if (!v) continue;
        const t = Array.isArray(ps.type) ? ps.type : [ps.type];
        if (t.includes("integer") || t.includes("number")) fields[name] = Number(v);
        else if (t.includes("boolean")) fields[name] = v === "true" || v === "1";
        else fields[name] = v;
      }
      if (keyInput.value.trim()) headers.Authorization = `Bearer ${keyInput.value.trim()}`;
      const init = { method: method.toUpperCase(), headers };
      if (ctype && method !== "get") {
        if (ctype.includes("json")) {
          headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(fields);
        } else {
          init.body = new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)]));
        }
      }
      status.textContent = "Sending…";
      try {
        const r = await fetch(path, init);
        const text = await r.text();
        let pretty = text;
        try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
        status.textContent = `HTTP ${r.status} ${r.statusText}`;
        out.textContent = pretty.length > 20000 ? `${pretty.slice(0, 20000)}\n…` : pretty;
        out.hidden = false;
      } catch (e) {
        status.textContent = `Failed: ${e}`;
      }
    });
    box.append(el("div", { class: "actions" }, send, status), out);
    return box;
  }

  function operation(method, path, op) {
    const card = el("section", { class: "op", id: opId(method, path), "data-method": method, "data-path": path });
    card.append(el("header", {},
      el("span", { class: `method ${method}`, text: method }),
      el("span", { class: "path mono", text: path }),
      rich("span", "summary", op.summary || "")));
    const body = el("div", { class: "body" });
    if (op.description && op.description !== op.summary) body.append(rich("p", null, op.description));
    if (op.parameters && op.parameters.length) {
      body.append(el("h4", { text: "Parameters" }));
      const t = el("table", { class: "schema" }, el("thead", {}, el("tr", {},
        el("th", { text: "name" }), el("th", { text: "in" }), el("th", { text: "type" }), el("th", { text: "description" }))));
      const tb = el("tbody");
      for (const p of op.parameters) {
        tb.append(el("tr", {}, el("td", { text: p.name }), el("td", { text: p.in }),
          el("td", {}, el("span", { class: "type", text: typeText(p.schema) })), el("td", { text: p.description || "" })));
      }
      t.append(tb);
      body.append(t);
    }
    if (op.requestBody) {
      const rb = op.requestBody;
      body.append(el("h4", { text: "Request body" }));
      if (rb.description) body.append(rich("p", "muted", rb.description));
      for (const [ct, media] of Object.entries(rb.content || {})) {
        body.append(el("p", { class: "small" }, "Content-Type: ", el("code", { text: ct }),
          refName(media.schema) ? ` — ${refName(media.schema)}` : ""));
        body.append(el("div", { class: "table-wrap" }, schemaTable(media.schema, 0)));
      }
    }
    body.append(el("h4", { text: "Responses" }));
    const rt = el("table", { class: "schema" }, el("thead", {}, el("tr", {},
      el("th", { text: "status" }), el("th", { text: "description" }), el("th", { text: "body" }))));
    const rtb = el("tbody");
    for (const [code, r] of Object.entries(op.responses || {})) {
      const media = r.content ? Object.values(r.content)[0] : null;
      const schemaName = media ? refName(media.schema) || typeText(media.schema) : "";
      const link = schemaName && spec.components && spec.components.schemas && spec.components.schemas[schemaName]
        ? el("a", { href: `#schema-${schemaName}`, text: schemaName }) : schemaName;
      rtb.append(el("tr", {},
        el("td", { class: `status-code ${code.startsWith("2") ? "ok" : "bad"}`, text: code }),
        el("td", { text: r.description || "" }), el("td", {}, link)));
    }
    rt.append(rtb);
    body.append(el("div", { class: "table-wrap" }, rt));
    if (op.security && op.security.some((s) => Object.keys(s).length)) {
      body.append(el("p", { class: "small muted", text: "Auth: an API key as Authorization: Bearer, X-Api-Key or a key field." }));
    }
    body.append(tryIt(method, path, op));
    card.append(body);
    return card;
  }

  function render() {
    const info = spec.info || {};
    const byTag = new Map();
    let count = 0;
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of ["get", "post", "put", "patch", "delete"]) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([method, path, op]);
        count++;
      }
    }
    const main = [el("h1", { text: `${info.title || "API"} API reference` }),
      el("p", { class: "intro" }, info.description || "", " ",
        el("span", { class: "mono", text: `version ${info.version || "?"} · OpenAPI ${spec.openapi || "?"}` }))];
    const tocItems = [];
    const order = ["contract", "native", "operations"];
    const tags = [...byTag.keys()].sort((a, b) => ((order.indexOf(a) + 1) || 99) - ((order.indexOf(b) + 1) || 99));
    for (const tag of tags) {
      main.push(el("h2", { class: "tag", text: tag }));
      tocItems.push(el("h3", { text: tag }));
      for (const [method, path, op] of byTag.get(tag)) {
        main.push(operation(method, path, op));
        tocItems.push(el("a", { href: `#${opId(method, path)}` }, el("span", { class: `method ${method}`, text: method }),
          el("span", { class: "mono", text: path })));
      }
    }
    const schemas = (spec.components && spec.components.schemas) || {};
    if (Object.keys(schemas).length) {
      main.push(el("h2", { class: "tag", text: "schemas" }));
      tocItems.push(el("h3", { text: "schemas" }));
      for (const [name, s] of Object.entries(schemas)) {
        main.push(el("section", { class: "op", id: `schema-${name}` },
          el("header", {}, el("span", { class: "path mono", text: name }), el("span", { class: "summary", text: s.description || "" })),
          el("div", { class: "body" }, el("div", { class: "table-wrap" }, schemaTable({ $ref: `#/components/schemas/${name}` }, 0)))));
        tocItems.push(el("a", { href: `#schema-${name}` }, el("span", { class: "mono", text: name })));
      }
    }
    doc.replaceChildren(...main);
    doc.dataset.operations = String(count);
    toc.replaceChildren(...tocItems);
    toc.classList.remove("muted");
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch("/openapi.json")
    .then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.json();
    })
    .then((j) => {
      spec = j;
      render();
    })
    .catch((e) => {
      doc.replaceChildren(el("div", { class: "error", text: `Could not load /openapi.json: ${e}` }));
      toc.textContent = "";
    });
})();
