// The twin's 3D viewer: the scene from /viewer/scene, the state from /viewer/state, live
// changes from the /stream WebSocket, the past through /viewer/state?at= (as `twin state --at`).
// The fab itself is drawn by fab3d.js, one draw call per kind of thing: the whole SMAT2022 fab
// is a handful of draw calls, whatever the number of tools, ports and vehicles.
import * as THREE from "three";
import { SOFTWARE_GL, buildFab, createView, pointOn as pointOnFab } from "./fab3d.js";

const E10 = {
  productive: ["#2e9d4a", "productive"],
  standby: ["#f2c744", "standby"],
  engineering: ["#3f7fe0", "engineering"],
  scheduled_down: ["#e67e22", "scheduled down"],
  unscheduled_down: ["#d93636", "unscheduled down"],
  non_scheduled: ["#8a8f98", "non-scheduled"],
};
const NO_STATE = "#5d6670"; // no report yet
const STOCKER = "#6d5d8c";
const VEHICLE_EMPTY = "#7fd8ff";
const VEHICLE_LOADED = "#ff5fd2";
const STREAM_TYPES = "equipment.state,lot.track_in,lot.track_out,vehicle.,carrier.picked_up,carrier.delivered";
const RESYNC_MS = 30000; // the live view re-reads the whole state this often (drift-proof)
const TOKEN_KEY = "twin.token";

const $ = (id) => document.getElementById(id);
const api = {
  token: null,
  async get(path) {
    const r = await fetch(path, { headers: { Authorization: `Bearer ${this.token}` } });
    if (r.status === 401 || r.status === 403) {
      askToken(`the server refused the token (${r.status}); enter one with the read scope`);
      throw new Error(`auth ${r.status}`);
    }
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  },
};

// ------------------------------------------------------------------ token (never in a URL)
function takeToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", location.pathname); // the fragment leaves the address bar
    let token = "";
    try { token = decodeURIComponent(m[1]); } catch (e) { /* bad %-escapes: asked below */ }
    sessionStorage.setItem(TOKEN_KEY, token);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  // RFC 6750: what a bearer token may hold (anything else cannot be right: ask again)
  return token && /^[A-Za-z0-9\-._~+\/]{1,1024}=*$/.test(token) ? token : null;
}

function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("loginerr").textContent = message || "";
  $("login").classList.remove("hidden");
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  location.reload();
});

// ------------------------------------------------------------------ three.js scene
const canvas = $("view");
const view = createView(canvas);
const { renderer, camera, controls } = view;
const scene3 = view.scene;

const tmpM = new THREE.Matrix4();
const tmpC = new THREE.Color();
const tmpV = new THREE.Vector3();
const S = {
  // filled by build()
  equipIndex: new Map(), // id -> instance
  equipIds: [], equipKind: [], equipFamily: [], equipBox: null,
  segIndex: new Map(), segXYZ: null, segLen: null,
  vehIndex: new Map(), vehIds: [],
  veh: [], // per vehicle {from, to, t0, dur, last, loaded, rec}
  equipState: [], equipLots: [],
  meshes: {},
  mode: "loading", // live | replay
  clock: null, // ms epoch of the latest event shown
  wip: {},
  selected: null,
  firstFrameMs: null,
  frames: [],
  counts: {}, // live events applied, per type
};

function build(sc) {
  $("fab").textContent = sc.name;
  Object.assign(S, buildFab(view, sc));
  S.equipState = S.equipIds.map(() => null);
  S.equipLots = S.equipIds.map(() => 0);
  S.veh = S.vehIds.map((id, i) => {
    const [seg, off] = S.park[i];
    return {
      path: [pointOn(seg, off) || S.centre], cum: [0], seg, t0: 0, dur: 0, last: 0, loaded: false,
      rec: [seg, off, 0, "idle", null],
    };
  });
  paintAll();
  const list = $("ids");
  for (const id of [...S.equipIds, ...S.vehIds]) {
    const o = document.createElement("option");
    o.value = id;
    list.appendChild(o);
  }
}

const pointOn = (seg, offset) => pointOnFab(S, seg, offset);

// ------------------------------------------------------------------ state -> colours
function equipColour(i) {
  const st = S.equipState[i];
  if (st && E10[st]) return E10[st][0];
  return S.equipKind[i] === "stocker" ? STOCKER : NO_STATE;
}

function paintEquip(i) {
  S.meshes.tools.setColorAt(i, tmpC.set(equipColour(i)));
  S.meshes.tools.instanceColor.needsUpdate = true;
  const lots = S.equipLots[i];
  S.meshes.lots.geometry.getAttribute("cell").array[i] = lots <= 0 ? 0 : Math.min(lots, 10);
  S.meshes.lots.geometry.getAttribute("cell").needsUpdate = true;
}

function paintAll() {
  for (let i = 0; i < S.equipIds.length; i++) paintEquip(i);
  S.veh.forEach((v, i) => S.meshes.vehicles.setColorAt(i, tmpC.set(v.loaded ? VEHICLE_LOADED : VEHICLE_EMPTY)));
  if (S.meshes.vehicles.instanceColor) S.meshes.vehicles.instanceColor.needsUpdate = true;
}

function moveVehicle(i, seg, offset, now, dur) {
  const v = S.veh[i];
  const p = pointOn(seg, offset);
  if (!p) return;
  // glide along the rails: from where it is drawn, through the end of the segment it was on
  // and the start of the new one (the same point when they are adjacent), to the report
  const path = [current(v, now)];
  const was = S.segIndex.get(v.seg), to = S.segIndex.get(seg);
  if (was !== undefined && was !== to && dur > 0) {
    path.push(S.segXYZ.slice(6 * was + 3, 6 * was + 6), S.segXYZ.slice(6 * to, 6 * to + 3));
  }
  path.push(p);
  const cum = [0];
  for (let k = 1; k < path.length; k++) {
    const a = path[k - 1], b = path[k];
    cum.push(cum[k - 1] + Math.hypot(b[0] - a[0], b[1] - a[1], b[2] - a[2]));
  }
  Object.assign(v, { path, cum, seg, t0: now, dur });
}

function current(v, now) {
  const f = v.dur > 0 ? Math.min(Math.max((now - v.t0) / (v.dur * 1000), 0), 1) : 1;
  const path = v.path, cum = v.cum, total = cum[cum.length - 1];
  if (path.length === 1 || total === 0) return path[path.length - 1];
  const d = f * total;
  let k = 1;
  while (k < path.length - 1 && cum[k] < d) k++;
  const a = path[k - 1], b = path[k];
  const g = cum[k] > cum[k - 1] ? (d - cum[k - 1]) / (cum[k] - cum[k - 1]) : 1;
  return [a[0] + (b[0] - a[0]) * g, a[1] + (b[1] - a[1]) * g, a[2] + (b[2] - a[2]) * g];
}

function applySnapshot(st, lerp) {
  const now = performance.now();
  for (const [id, [state, lots]] of Object.entries(st.equipment)) {
    const i = S.equipIndex.get(id);
    if (i === undefined) continue;
    S.equipState[i] = state;
    S.equipLots[i] = lots;
  }
  for (const [id, rec] of Object.entries(st.vehicles)) {
    const i = S.vehIndex.get(id);
    if (i === undefined) continue;
    const v = S.veh[i];
    v.rec = rec;
    v.loaded = rec[4] != null;
    // no report yet (as of a past time too): where the scene parks it
    if (rec[0]) moveVehicle(i, rec[0], rec[1], now, lerp);
    else moveVehicle(i, S.park[i][0], S.park[i][1], now, lerp);
  }
  S.wip = st.wip_by_family || {};
  S.clock = st.clock ? Date.parse(st.clock) : S.clock;
  paintAll();
  showClock();
  if (S.selected) showInfo(S.selected);
}

function applyEvent(ev, now) {
  S.counts[ev.type] = (S.counts[ev.type] || 0) + 1;
  const t = Date.parse(ev.time);
  if (!(S.clock >= t)) S.clock = t;
  const d = ev.data || {};
  switch (ev.type) {
    case "equipment.state": {
      const i = S.equipIndex.get(ev.subject);
      if (i !== undefined) { S.equipState[i] = d.state; paintEquip(i); }
      break;
    }
    case "lot.track_in":
    case "lot.track_out": {
      const i = S.equipIndex.get(d.equipment);
      if (i !== undefined) {
        S.equipLots[i] = Math.max(0, S.equipLots[i] + (ev.type === "lot.track_in" ? 1 : -1));
        paintEquip(i);
      }
      break;
    }
    case "vehicle.position": {
      const i = S.vehIndex.get(ev.subject);
      if (i === undefined) break;
      const v = S.veh[i];
      // interpolate over the time the previous report took to come (bounded)
      const gap = v.last ? Math.min(Math.max((now - v.last) / 1000, 0.05), 2) : 0.5;
      v.last = now;
      v.rec = [d.segment, d.offset, d.speed, v.rec[3], v.rec[4]];
      moveVehicle(i, d.segment, d.offset, now, gap);
      break;
    }
    case "vehicle.state":
    case "carrier.picked_up":
    case "carrier.delivered": {
      const vid = ev.type === "vehicle.state" ? ev.subject : d.vehicle;
      const i = S.vehIndex.get(vid);
      if (i === undefined) break;
      const v = S.veh[i];
      if (ev.type === "vehicle.state") {
        v.rec[3] = d.state;
        if ("carrier" in d) v.rec[4] = d.carrier;
      } else v.rec[4] = ev.type === "carrier.picked_up" ? ev.subject : null;
      v.loaded = v.rec[4] != null;
      S.meshes.vehicles.setColorAt(i, tmpC.set(v.loaded ? VEHICLE_LOADED : VEHICLE_EMPTY));
      S.meshes.vehicles.instanceColor.needsUpdate = true;
      break;
    }
  }
}

// ------------------------------------------------------------------ live: state + stream
let ws = null;
let resyncTimer = null;

async function goLive() {
  stopPlay();
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  const st = await api.get("/viewer/state");
  applySnapshot(st, 0.3);
  setMode("live");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const b64 = btoa(api.token).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const url = `${proto}//${location.host}/stream?since=${st.seq}&type=${encodeURIComponent(STREAM_TYPES)}`;
  ws = new WebSocket(url, ["twin.v1", `twin.bearer.${b64}`]);
  S.wsBytes = 0;
  ws.onmessage = (m) => {
    S.wsBytes += m.data.length;
    if (S.mode !== "live") return;
    const msg = JSON.parse(m.data);
    if (!Array.isArray(msg)) return; // a notice ("live")
    const now = performance.now();
    for (const item of msg) applyEvent(item.event, now);
    showClock();
  };
  ws.onclose = (e) => {
    ws = null;
    if (e.code === 4401 || e.code === 1008) return askToken("the stream refused the token");
    if (S.mode === "live") retryLive(2000);
  };
  clearInterval(resyncTimer);
  resyncTimer = setInterval(async () => {
    if (S.mode !== "live") return;
    const s2 = await api.get("/viewer/state").catch(() => null);
    if (s2 && S.mode === "live") {
      // equipment and lots from the full state; vehicles keep following the stream
      applySnapshot({ ...s2, vehicles: {} }, 0.5);
    }
  }, RESYNC_MS);
}

// the server went away (restart, network): try again until it answers, while still live
function retryLive(ms) {
  $("mode").textContent = "reconnecting";
  setTimeout(() => {
    if (S.mode !== "live" || !$("login").classList.contains("hidden")) return;
    goLive().catch((err) => { report(err); retryLive(Math.min(ms * 2, 30000)); });
  }, ms);
}

// ------------------------------------------------------------------ time travel
const T = { first: null, last: null, at: null, playing: false, timer: null, busy: false };

async function refreshHistory() {
  const h = await api.get("/viewer/history");
  if (h.first_epoch == null) return;
  T.first = h.first_epoch; T.last = h.last_epoch;
  const sc = $("scrub");
  sc.min = Math.floor(T.first); sc.max = Math.ceil(T.last);
  if (S.mode === "live") sc.value = sc.max;
}

async function showAt(t, lerp) {
  T.at = t;
  $("scrubtime").textContent = new Date(t * 1000).toISOString();
  const st = await api.get(`/viewer/state?at=${encodeURIComponent(t.toFixed(3))}`);
  if (T.at !== t && !T.playing) return st; // a later scrub won
  setMode("replay");
  applySnapshot(st, lerp);
  S.clock = t * 1000;
  showClock();
  return st;
}

let scrubTimer = null;
$("scrub").addEventListener("input", (e) => {
  stopPlay();
  const t = Number(e.target.value);
  $("scrubtime").textContent = new Date(t * 1000).toISOString();
  clearTimeout(scrubTimer);
  scrubTimer = setTimeout(() => showAt(t, 0.2).catch(report), 150);
});
$("live").addEventListener("click", () => goLive().catch(report));
$("play").addEventListener("click", () => (T.playing ? stopPlay() : startPlay()));

function startPlay() {
  if (T.first == null) return; // nothing stored yet
  T.playing = true;
  $("play").textContent = "❚❚";
  if (T.at == null) T.at = T.first;
  const tick = 500;
  T.timer = setInterval(async () => {
    if (T.busy) return;
    const speed = Number($("speed").value);
    const t = Math.min(T.at + (speed * tick) / 1000, T.last);
    T.busy = true;
    try {
      await showAt(t, tick / 1000);
      $("scrub").value = t;
      if (t >= T.last) goLive().catch(report);
    } catch (err) { report(err); stopPlay(); }
    T.busy = false;
  }, tick);
}

function stopPlay() {
  T.playing = false;
  clearInterval(T.timer);
  $("play").textContent = "▶";
}

function setMode(m) {
  S.mode = m;
  const b = $("mode");
  b.textContent = m === "live" ? "live" : "replay";
  b.className = `badge ${m}`;
  if (m === "live") $("scrubtime").textContent = "live";
}

function showClock() {
  $("clock").textContent = S.clock ? new Date(S.clock).toISOString().replace(".000Z", "Z") : "no events yet";
}

// ------------------------------------------------------------------ picking and the info panel
const ray = new THREE.Raycaster();
canvas.addEventListener("click", (e) => {
  const r = canvas.getBoundingClientRect();
  const p = new THREE.Vector2(((e.clientX - r.left) / r.width) * 2 - 1, -((e.clientY - r.top) / r.height) * 2 + 1);
  ray.setFromCamera(p, camera);
  const hit = ray.intersectObjects([S.meshes.vehicles, S.meshes.tools], false)[0];
  if (!hit) return;
  const id = hit.object === S.meshes.tools ? S.equipIds[hit.instanceId] : S.vehIds[hit.instanceId];
  select(id);
});

$("search").addEventListener("change", (e) => {
  const id = e.target.value.trim();
  if (S.equipIndex.has(id) || S.vehIndex.has(id)) {
    select(id, true);
  }
});

function select(id, fly) {
  S.selected = id;
  if (fly) {
    const p = positionOf(id);
    if (p) {
      const d = tmpV.copy(camera.position).sub(controls.target);
      controls.target.set(...p);
      camera.position.copy(controls.target).add(d.setLength(Math.min(d.length(), 40)));
    }
  }
  showInfo(id).catch(report);
}

function placeSelection(now) {
  const sel = S.meshes.selection;
  const id = S.selected;
  sel.visible = id != null;
  if (!sel.visible) return;
  const i = S.equipIndex.get(id);
  if (i !== undefined) {
    const b = S.equipBox;
    sel.scale.set(b[6 * i + 3] + 0.4, b[6 * i + 4] + 0.4, b[6 * i + 5] + 0.3);
    sel.position.set(b[6 * i], b[6 * i + 1], b[6 * i + 2]);
  } else {
    const p = current(S.veh[S.vehIndex.get(id)], now);
    sel.scale.set(1.4, 1.4, 1.0);
    sel.position.set(p[0], p[1], p[2] - 0.8);
  }
}

function positionOf(id) {
  const i = S.equipIndex.get(id);
  if (i !== undefined) return [S.equipBox[6 * i], S.equipBox[6 * i + 1], S.equipBox[6 * i + 2]];
  const k = S.vehIndex.get(id);
  return k === undefined ? null : current(S.veh[k], performance.now());
}

const esc = (s) => String(s ?? "–").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function showInfo(id) {
  const box = $("info");
  box.classList.remove("hidden");
  const rows = [];
  const i = S.equipIndex.get(id);
  if (i !== undefined) {
    const fam = S.equipFamily[i];
    rows.push(["kind", S.equipKind[i]], ["family", fam], ["E10 state", S.equipState[i] || "no report yet"],
      ["lots in process", S.equipLots[i]], ["family queue + WIP", fam ? S.wip[fam] || 0 : "–"]);
    if (S.mode === "live") {
      const e = await api.get(`/equipment/${encodeURIComponent(id)}`).catch(() => null);
      if (e) rows.push(["reason", e.reason], ["since", e.since], ["setup", e.setup], ["lots", e.lots.join(", ") || "none"]);
    }
  } else {
    const v = S.veh[S.vehIndex.get(id)];
    rows.push(["kind", "vehicle"], ["state", v.rec[3]], ["load", v.loaded ? `carrier ${v.rec[4]}` : "empty"],
      ["segment", v.rec[0]], ["offset (m)", Number(v.rec[1] || 0).toFixed(2)], ["speed (m/s)", Number(v.rec[2] || 0).toFixed(2)]);
  }
  const until = S.clock ? S.clock / 1000 : null;
  let recent = [];
  if (until) {
    const q = `/events?subject=${encodeURIComponent(id)}&since=${(until - 3600).toFixed(3)}&until=${until.toFixed(3)}&limit=500`;
    const ev = await api.get(q).catch(() => ({ items: [] }));
    recent = ev.items.slice(-10).reverse();
  }
  if (S.selected !== id) return;
  box.innerHTML = `<h3>${esc(id)}</h3><table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("")}</table>
    <div>recent events (last hour of the twin's clock)</div>
    <ol>${recent.map((r) => `<li>${esc(r.event.time.slice(11, 19))} ${esc(r.event.type)} ${esc(JSON.stringify(r.event.data))}</li>`).join("") || "<li>none</li>"}</ol>
    <button id="close">close</button>`;
  $("close").onclick = () => { S.selected = null; box.classList.add("hidden"); };
}

function legend() {
  const item = (c, t) => `<div><i style="background:${c}"></i>${t}</div>`;
  $("legend").innerHTML = "<b>tools (E10 state)</b>" + Object.values(E10).map(([c, t]) => item(c, t)).join("") +
    item(NO_STATE, "no report yet") + item(STOCKER, "stocker") + "<b>vehicles</b>" +
    item(VEHICLE_EMPTY, "empty") + item(VEHICLE_LOADED, "carrying a FOUP") +
    '<div>white disc: lots in process</div>';
}

function report(err) {
  console.error(err);
}

// ------------------------------------------------------------------ render loop
function frame(now) {
  const vm = S.meshes.vehicles;
  if (vm) {
    for (let i = 0; i < S.veh.length; i++) {
      const p = current(S.veh[i], now);
      tmpM.makeTranslation(p[0], p[1], p[2]);
      vm.setMatrixAt(i, tmpM);
    }
    vm.instanceMatrix.needsUpdate = true;
    placeSelection(now);
  }
  controls.update();
  renderer.render(scene3, camera);
  S.frameCount = (S.frameCount || 0) + 1;
  if (S.frames.length < 600) S.frames.push(now);
  else { S.frames.shift(); S.frames.push(now); }
  if (S.firstFrameMs == null && vm) {
    S.firstFrameMs = now;
    window.twinViewer.ready = true;
  }
  requestAnimationFrame(frame);
}

// ------------------------------------------------------------------ test and bench hooks
window.twinViewer = {
  ready: false,
  get firstFrameMs() { return S.firstFrameMs; },
  get mode() { return S.mode; },
  get clock() { return S.clock; },
  get wsBytes() { return S.wsBytes || 0; },
  get counts() { return { ...S.counts }; },
  get frameCount() { return S.frameCount || 0; },
  drawCalls: () => renderer.info.render.calls,
  softwareGL: SOFTWARE_GL,
  vehicles: () => S.vehIds.slice(),
  // where a vehicle or tool is on the screen now, in CSS pixels (null if unknown)
  screenPosition(id) {
    const p = positionOf(id);
    if (!p) return null;
    tmpV.set(...p).project(camera);
    const r = canvas.getBoundingClientRect();
    return [(tmpV.x + 1) / 2 * r.width, (1 - tmpV.y) / 2 * r.height];
  },
  toolColour(id) {
    const i = S.equipIndex.get(id);
    return i === undefined ? null : "#" + tmpC.set(equipColour(i)).getHexString();
  },
  toolState(id) {
    const i = S.equipIndex.get(id);
    return i === undefined ? null : S.equipState[i];
  },
  // frame times (ms) over the last n frames
  frameTimes(n = 60) {
    const f = S.frames.slice(-n - 1);
    return f.slice(1).map((t, i) => t - f[i]);
  },
  scrubTo: (t) => { stopPlay(); $("scrub").value = t; return showAt(t, 0); },
  goLive: () => goLive(),
  history: () => ({ first: T.first, last: T.last }),
};

async function main() {
  legend();
  api.token = takeToken();
  if (!api.token) {
    return askToken(sessionStorage.getItem(TOKEN_KEY) ? "that is not a bearer token (letters, digits, - . _ ~ + /)" : "");
  }
  const sc = await api.get("/viewer/scene");
  build(sc);
  requestAnimationFrame(frame);
  await goLive();
  await refreshHistory();
  setInterval(() => refreshHistory().catch(report), 10000);
}

main().catch(report);
