// The try-it page: send one image to the native API and draw what comes back.
// Everything from the API is written with textContent (never as HTML): it is data, not markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    drop: $("drop"), file: $("file"), picked: $("picked"), url: $("url"), faces: $("faces"),
    facetype: $("facetype"), key: $("key"), mesh: $("mesh"), go: $("go"), status: $("status"),
    canvas: $("canvas"), placeholder: $("placeholder"), error: $("error"), summary: $("summary"),
    timings: $("timings"), tbody: document.querySelector("#attrs tbody"), curl: $("curl"),
    copy: $("copy"),
  };
  const COLORS = ["#ff3b30", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2", "#64d2ff", "#ffd60a", "#ff375f", "#30d158", "#5e5ce6"];
  const CONTRACT_FACE_TYPE = { LIVE: 1, IDCARD: 2, WATERMARK: 3, CERT: 4 };
  let picked = null; // { file, objectUrl }

  function setStatus(state, text) {
    els.status.dataset.state = state;
    els.status.textContent = text;
  }

  function source() {
    if (picked) return { kind: "file" };
    const url = els.url.value.trim();
    if (url) return { kind: "url", url };
    return null;
  }

  function faceCount() {
    const n = Math.round(Number(els.faces.value));
    return Number.isFinite(n) ? Math.min(10, Math.max(1, n)) : 1;
  }

  function refresh() {
    els.go.disabled = source() === null;
    renderCurl();
  }

  function pickFile(file) {
    if (!file) return;
    if (picked) URL.revokeObjectURL(picked.objectUrl);
    picked = { file, objectUrl: URL.createObjectURL(file) };
    els.url.value = "";
    els.picked.replaceChildren();
    const img = document.createElement("img");
    img.src = picked.objectUrl;
    img.alt = "";
    const info = document.createElement("div");
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = file.name || "pasted image";
    const size = document.createElement("small");
    size.textContent = `${(file.size / 1024).toFixed(0)} KB · click to change`;
    info.append(name, size);
    els.picked.append(img, info);
    els.picked.hidden = false;
    els.drop.querySelector(".drop-text").hidden = true;
    setStatus("idle", "Ready: press “Detect faces”.");
    refresh();
  }

  function clearFile() {
    if (picked) URL.revokeObjectURL(picked.objectUrl);
    picked = null;
    els.picked.hidden = true;
    els.drop.querySelector(".drop-text").hidden = false;
  }

  // --- input wiring ---
  els.drop.addEventListener("click", () => els.file.click());
  els.drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.file.click(); }
  });
  els.file.addEventListener("change", () => pickFile(els.file.files[0]));
  ["dragenter", "dragover"].forEach((t) => els.drop.addEventListener(t, (e) => {
    e.preventDefault();
    els.drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => els.drop.addEventListener(t, () => els.drop.classList.remove("over")));
  els.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) pickFile(f);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.type.startsWith("image/"));
    if (item) pickFile(item.getAsFile());
  });
  els.url.addEventListener("input", () => {
    if (els.url.value.trim()) clearFile();
    refresh();
  });
  [els.faces, els.facetype, els.key].forEach((el) => el.addEventListener("input", refresh));
  els.go.addEventListener("click", run);
  els.copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(els.curl.textContent);
      els.copy.textContent = "Copied";
    } catch {
      els.copy.textContent = "Select and copy";
    }
    setTimeout(() => { els.copy.textContent = "Copy"; }, 1500);
  });

  // --- the equivalent contract call ---
  const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

  function renderCurl() {
    const src = source();
    if (!src) {
      els.curl.textContent = "Pick an image to see the command.";
      return;
    }
    const endpoint = `${location.origin}/faceDetect/index`;
    const lines = [];
    const args = [`curl -s ${endpoint}`, `--data-urlencode "key=$KEY"`];
    if (src.kind === "file") {
      const name = picked.file.name || "photo.jpg";
      lines.push(`base64 -w0 ${shq(name)} > image.b64`);
      args.push(`--data-urlencode "image@image.b64"`);
    } else {
      args.push(`--data-urlencode ${shq(`image=${src.url}`)}`, "-d image_type=2");
    }
    args.push(`-d face_num=${faceCount()}`);
    const ft = CONTRACT_FACE_TYPE[els.facetype.value] || 1;
    if (ft !== 1) args.push(`-d face_type=${ft}`);
    lines.push(args.join(" \\\n  "));
    els.curl.textContent = lines.join("\n");
  }

  // --- the call ---
  async function run() {
    const src = source();
    if (!src) return;
    els.go.disabled = true;
    els.error.hidden = true;
    setStatus("loading", "Analysing…");
    const headers = {};
    const key = els.key.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body;
    if (src.kind === "file") {
      body = new FormData();
      body.append("file", picked.file, picked.file.name || "image");
      body.append("max_faces", String(faceCount()));
      body.append("face_type", els.facetype.value);
      if (els.mesh.checked) body.append("mesh", "true");
    } else {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify({
        url: src.url, max_faces: faceCount(), face_type: els.facetype.value, mesh: els.mesh.checked,
      });
    }
    const t0 = performance.now();
    let resp, data;
    try {
      resp = await fetch("/v1/detect", { method: "POST", headers, body });
      const text = await resp.text();
      try { data = JSON.parse(text); } catch { data = { raw: text }; }
    } catch (e) {
      showError({ title: "The server could not be reached", detail: String(e) });
      setStatus("error", "Request failed.");
      els.go.disabled = false;
      return;
    }
    const ms = performance.now() - t0;
    els.go.disabled = false;
    if (!resp.ok || !data || !Array.isArray(data.faces)) {
      const err = (data && data.error) || {};
      showError({
        title: err.code ? `Error ${err.code} (${err.slug}): ${err.message}` : `HTTP ${resp.status}`,
        detail: err.detail || data.raw || "",
        hint: hintFor(err.code, resp.status),
        requestId: data && data.request_id,
      });
      setStatus("error", `Failed: HTTP ${resp.status}${err.code ? `, code ${err.code}` : ""}.`);
      clearResult();
      return;
    }
    const n = data.faces.length;
    setStatus("done", n ? `Found ${n} face${n > 1 ? "s" : ""} in ${ms.toFixed(0)} ms.` : "No face found.");
    els.summary.textContent = `${data.width} × ${data.height} px · ${n} face${n === 1 ? "" : "s"}`;
    const t = data.timings || {};
    els.timings.textContent = data.from_token ? "from a stored token" :
      `decode ${fmt(t.decode_ms, 0)} · detect ${fmt(t.detect_ms, 0)} · mesh ${fmt(t.landmarks_ms, 0)} · attributes ${fmt(t.attributes_ms, 0)} · total ${fmt(t.total_ms, 0)} ms`;
    fillTable(data.faces);
    await draw(data, src);
  }

  function hintFor(code, status) {
    if (code === 10001 || code === 10002 || status === 401) {
      return els.key.value.trim() ? "Check the API key." : "This server requires an API key: enter it in the API key field.";
    }
    if (code === 200212 || code === 200213) return "The server refused or could not fetch this URL; upload the file instead.";
    if (code === 200217) return "The server is busy: try again in a moment.";
    return "";
  }

  function showError({ title, detail, hint, requestId }) {
    els.error.replaceChildren();
    const add = (cls, text) => {
      if (!text) return;
      const d = document.createElement("div");
      d.className = cls;
      d.textContent = text;
      els.error.append(d);
    };
    add("title", title);
    add("detail", detail);
    add("hint", hint);
    add("detail", requestId ? `request id ${requestId}` : "");
    els.error.hidden = false;
  }

  function clearResult() {
    els.canvas.dataset.faces = "0";
    els.summary.textContent = "";
    els.timings.textContent = "";
    els.tbody.replaceChildren(emptyRow("No faces."));
  }

  // --- drawing ---
  function loadImage(src) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null);
      img.src = src;
    });
  }

  async function draw(data, src) {
    const img = await loadImage(src.kind === "file" ? picked.objectUrl : src.url);
    const c = els.canvas;
    c.width = data.width;
    c.height = data.height;
    const g = c.getContext("2d");
    if (img) {
      // The server reports the upright size; browsers apply EXIF orientation the same way.
      g.drawImage(img, 0, 0, data.width, data.height);
    } else {
      g.fillStyle = "#dfe4ea";
      g.fillRect(0, 0, c.width, c.height);
      g.fillStyle = "#5e6b7a";
      g.font = `${Math.max(12, c.width / 40)}px system-ui, sans-serif`;
      g.fillText("(the browser could not load this image; boxes only)", 12, Math.max(24, c.width / 25));
    }
    const unit = Math.max(1, Math.max(c.width, c.height) / 600);
    data.faces.forEach((f, i) => {
      const color = COLORS[i % COLORS.length];
      const b = f.bbox;
      g.lineWidth = 2 * unit;
      g.strokeStyle = color;
      g.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
      if (Array.isArray(f.mesh)) {
        g.fillStyle = "rgba(255,255,255,0.75)";
        const r = 0.7 * unit;
        f.mesh.forEach((p) => { g.fillRect(p[0] - r / 2, p[1] - r / 2, r, r); });
      }
      g.fillStyle = color;
      (f.landmarks || []).forEach((p) => {
        g.beginPath();
        g.arc(p.x, p.y, 2.2 * unit, 0, Math.PI * 2);
        g.fill();
        g.lineWidth = 0.8 * unit;
        g.strokeStyle = "#fff";
        g.stroke();
      });
      const text = label(f, i);
      g.font = `600 ${Math.round(12 * unit)}px system-ui, sans-serif`;
      const pad = 3 * unit;
      const w = g.measureText(text).width + 2 * pad;
      const h = 16 * unit;
      const y = b.y1 - h >= 0 ? b.y1 - h : b.y2;
      g.fillStyle = color;
      g.fillRect(b.x1 - g.lineWidth / 2, y, w, h);
      g.fillStyle = "#fff";
      g.textBaseline = "middle";
      g.fillText(text, b.x1 + pad - g.lineWidth / 2, y + h / 2);
    });
    c.dataset.faces = String(data.faces.length);
    c.classList.remove("blank");
    els.placeholder.hidden = true;
  }

  function label(f, i) {
    const a = f.attributes || {};
    const parts = [`#${i + 1}`];
    if (a.gender) parts.push(a.gender.type === "female" ? "F" : "M");
    if (typeof a.age === "number") parts.push(String(Math.round(a.age)));
    if (a.emotion) parts.push(a.emotion.type);
    return parts.join(" ");
  }

  // --- the table ---
  function fmt(v, digits) {
    return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
  }

  function emptyRow(text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 15;
    td.textContent = text;
    tr.append(td);
    return tr;
  }

  function cell(tr, text, cls, prob) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.append(document.createTextNode(text));
    if (typeof prob === "number") {
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = `${Math.round(prob * 100)}%`;
      td.append(p);
    }
    tr.append(td);
    return td;
  }

  function labelled(tr, v, cls) {
    if (v && typeof v.type === "string") cell(tr, v.type, cls, v.probability);
    else cell(tr, "—", cls);
  }

  function fillTable(faces) {
    if (!faces.length) {
      els.tbody.replaceChildren(emptyRow("No face found."));
      return;
    }
    const rows = faces.map((f, i) => {
      const a = f.attributes || {};
      const tr = document.createElement("tr");
      tr.className = "face-row";
      const first = cell(tr, `${i + 1}`, "idx");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = COLORS[i % COLORS.length];
      first.prepend(sw);
      cell(tr, fmt(f.score, 3), "score");
      cell(tr, typeof a.age === "number" ? String(Math.round(a.age)) : "—", "age");
      labelled(tr, a.gender, "gender");
      labelled(tr, a.expression, "expression");
      labelled(tr, a.emotion, "emotion");
      labelled(tr, a.glasses, "glasses");
      const e = a.eye_status;
      cell(tr, e ? `${fmt(e.left_eye, 2)} / ${fmt(e.right_eye, 2)}` : "—", "eyes");
      labelled(tr, a.race, "race");
      labelled(tr, a.face_shape, "face-shape");
      cell(tr, fmt(a.beauty, 1), "beauty");
      labelled(tr, a.face_type, "face-type");
      const p = f.pose || {};
      cell(tr, `${fmt(p.yaw, 1)}° / ${fmt(p.pitch, 1)}° / ${fmt(p.roll, 1)}°`, "pose");
      const q = f.quality || {};
      cell(tr, `${fmt(q.blur, 2)} / ${fmt(q.illumination, 0)} / ${fmt(q.completeness, 2)}`, "quality");
      const b = f.bbox;
      cell(tr, `${Math.round(b.x1)},${Math.round(b.y1)} ${Math.round(b.x2 - b.x1)}×${Math.round(b.y2 - b.y1)}`, "box mono");
      return tr;
    });
    els.tbody.replaceChildren(...rows);
  }

  els.canvas.classList.add("blank");
  refresh();
})();
