// The WebUI: upload a photo, show what POST /api/parse returns, re-ask when a setting changes.
// The server keeps the engine output of recent photos, so changing parts or background
// re-renders without a second inference.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, photoUrl: null, bgImage: null, classes: [], seq: 0, timer: null };

function setState(name) { document.body.dataset.state = name; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function swatch(color) {
  const s = document.createElement("span");
  s.className = "swatch";
  s.style.backgroundColor = `rgb(${color[0]}, ${color[1]}, ${color[2]})`;
  return s;
}

function png(b64) { return `data:image/png;base64,${b64}`; }

// ------------------------------------------------------------------ classes from the engine
async function loadInfo() {
  try {
    const reply = await (await fetch("/api/info")).json();
    if (reply.code !== 0) throw new Error(reply.message);
    const info = reply.data;
    state.classes = info.classes;
    $("engine").textContent = `engine: ${info.engine.name} · ${info.classes.length} classes`;
    buildParts(info.classes.filter((c) => c.foreground));
    setState("ready");
  } catch (err) {
    $("engine").textContent = "server not reachable";
    showError(`Cannot read /api/info: ${err.message}`);
    setState("error");
  }
}

function buildParts(parts) {
  const list = $("part-list");
  list.replaceChildren();
  for (const c of parts) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.value = c.name;
    box.dataset.part = c.name;
    box.addEventListener("change", schedule);
    label.append(box, swatch(c.color), document.createTextNode(c.name));
    list.append(label);
  }
}

function keptParts() {
  return [...document.querySelectorAll("#part-list input:checked")].map((b) => b.value);
}

function setAllParts(checked) {
  for (const b of document.querySelectorAll("#part-list input")) b.checked = checked;
  schedule();
}

// ------------------------------------------------------------------ the request
function formFor(photo) {
  const form = new FormData();
  form.append("image", photo, photo.name || "photo");
  form.append("keep", keptParts().join(","));
  form.append("soft", $("hard").checked ? "false" : "true");
  const mode = document.querySelector('input[name="bg"]:checked').value;
  if (mode === "color") form.append("background", $("bg-color").value);
  else if (mode === "image" && state.bgImage) {
    form.append("background", "image");
    form.append("background_image", state.bgImage, state.bgImage.name || "background");
  } else if (mode === "image") form.append("background", "transparent");  // until one is chosen
  else form.append("background", mode);
  return form;
}

function schedule() {  // coalesce quick clicks into one request
  clearTimeout(state.timer);
  state.timer = setTimeout(parse, 120);
}

async function parse() {
  if (!state.photo) return;
  const seq = ++state.seq;
  setState("busy");
  showError("");
  $("status").textContent = "Parsing…";
  let reply;
  try {
    const response = await fetch("/api/parse", { method: "POST", body: formFor(state.photo) });
    reply = await response.json();
  } catch (err) {
    reply = { code: -1, message: `the server did not answer: ${err.message}` };
  }
  if (seq !== state.seq) return;  // a newer request is on its way
  if (reply.code !== 0) {
    showError(reply.message);
    $("status").textContent = "Failed.";
    document.body.dataset.errors = String(Number(document.body.dataset.errors || 0) + 1);
    setState("error");
    return;
  }
  render(reply.data);
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  setState("done");
}

// ------------------------------------------------------------------ the results
function render(d) {
  $("parsing").src = png(d.result_image);
  $("alpha").src = png(d.alpha);
  $("composite").src = png(d.composite);
  const link = $("download");
  link.href = $("composite").src;
  link.hidden = false;

  const legend = $("legend");
  legend.replaceChildren();
  const masks = $("masks");
  masks.replaceChildren();
  d.classes.forEach((name, i) => {
    const li = document.createElement("li");
    li.dataset.class = name;
    li.append(swatch(d.colors[i]), document.createTextNode(name));
    legend.append(li);

    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = png(d.masks[i]);
    img.alt = `${name} mask`;
    const cap = document.createElement("figcaption");
    cap.textContent = name;
    fig.append(img, cap);
    masks.append(fig);
  });
  $("mask-section").hidden = d.classes.length === 0;
  const how = d.cached ? "engine output reused" : `inference ${d.inference_time.toFixed(3)} s`;
  $("status").textContent = `${d.width}×${d.height} · ${how} · ${d.engine}`;
}

function choosePhoto(file) {
  if (!file) return;
  state.photo = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  $("original").src = state.photoUrl;
  for (const id of ["parsing", "alpha", "composite"]) $(id).removeAttribute("src");
  $("legend").replaceChildren();
  $("masks").replaceChildren();
  $("mask-section").hidden = true;
  $("download").hidden = true;
  parse();
}

// ------------------------------------------------------------------ wiring
function wire() {
  $("file").addEventListener("change", (e) => choosePhoto(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choosePhoto(e.dataTransfer.files[0]);
  });
  $("parts-all").addEventListener("click", () => setAllParts(true));
  $("parts-none").addEventListener("click", () => setAllParts(false));
  for (const r of document.querySelectorAll('input[name="bg"]')) r.addEventListener("change", schedule);
  $("bg-color").addEventListener("input", () => { document.querySelector('input[value="color"]').checked = true; schedule(); });
  $("bg-file").addEventListener("change", (e) => {
    state.bgImage = e.target.files[0] || null;
    document.querySelector('input[value="image"]').checked = true;
    schedule();
  });
  $("hard").addEventListener("change", schedule);
}

wire();
loadInfo();
