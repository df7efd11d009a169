// The fab in three.js, one draw call per kind of thing: equipment is one InstancedMesh of unit
// boxes scaled per tool, vehicles another, the lot counts one instanced billboard with a digit
// atlas, rails one LineSegments, ports one Points, bays one InstancedMesh. The scene comes from
// /viewer/scene (flat arrays); viewer.js owns the state, the stream and the page.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const tmpM = new THREE.Matrix4();

// a software rasteriser (SwiftShader, llvmpipe: no GPU) draws without multisampling at one
// pixel per CSS pixel; a GPU browser gets antialiasing and up to 2 pixels per CSS pixel
export const SOFTWARE_GL = (() => {
  try {
    const gl = document.createElement("canvas").getContext("webgl2");
    const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
    const name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : "";
    gl && gl.getExtension("WEBGL_lose_context")?.loseContext();
    return /swiftshader|llvmpipe|software/i.test(name);
  } catch (e) {
    return false;
  }
})();

/** The renderer, scene, camera (Z-up, metres), orbit controls and lights on ``canvas``. */
export function createView(canvas) {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: !SOFTWARE_GL, preserveDrawingBuffer: true });
  renderer.setPixelRatio(SOFTWARE_GL ? 1 : Math.min(window.devicePixelRatio, 2));
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#1d2126");
  const camera = new THREE.PerspectiveCamera(45, 1, 0.5, 5000);
  camera.up.set(0, 0, 1); // the scene graph is Z-up, metres
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = true;
  scene.add(new THREE.HemisphereLight("#ffffff", "#404448", 2.2));
  const sun = new THREE.DirectionalLight("#ffffff", 1.2);
  sun.position.set(0.3, -0.5, 1);
  scene.add(sun);
  const fit = () => {
    const w = window.innerWidth, h = window.innerHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  };
  window.addEventListener("resize", fit);
  fit();
  return { renderer, scene, camera, controls };
}

/** Adds the fab of ``sc`` (GET /viewer/scene) to ``view``; returns its meshes and indexes. */
export function buildFab(view, sc) {
  const { scene, camera, controls } = view;
  const [lo, hi] = sc.bbox;
  const cx = (lo[0] + hi[0]) / 2, cy = (lo[1] + hi[1]) / 2;
  const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], 10);
  const fab = { meshes: {}, equipIndex: new Map(), segIndex: new Map(), vehIndex: new Map() };
  // floor
  const floor = new THREE.Mesh(
    new THREE.PlaneGeometry(hi[0] - lo[0] + 10, hi[1] - lo[1] + 10),
    new THREE.MeshLambertMaterial({ color: "#2a2f35" }),
  );
  floor.position.set(cx, cy, -0.02);
  scene.add(floor);
  // bays: one instanced slab each
  const bayGeo = new THREE.BoxGeometry(1, 1, 0.02);
  const bays = new THREE.InstancedMesh(bayGeo, new THREE.MeshLambertMaterial({ color: "#363c44" }), Math.max(sc.bays.length, 1));
  bays.count = sc.bays.length;
  sc.bays.forEach(([, x0, y0, x1, y1], i) => {
    tmpM.makeScale(x1 - x0 + 2, y1 - y0 + 2, 1).setPosition((x0 + x1) / 2, (y0 + y1) / 2, 0);
    bays.setMatrixAt(i, tmpM);
  });
  scene.add(bays);
  // equipment: unit boxes, origin at the bottom centre, scaled per instance
  const eq = sc.equipment;
  const n = eq.ids.length;
  const boxGeo = new THREE.BoxGeometry(1, 1, 1).translate(0, 0, 0.5);
  const tools = new THREE.InstancedMesh(boxGeo, new THREE.MeshLambertMaterial(), Math.max(n, 1));
  tools.count = n;
  for (let i = 0; i < n; i++) {
    const b = eq.box.slice(6 * i, 6 * i + 6);
    tmpM.makeScale(b[3], b[4], b[5]).setPosition(b[0], b[1], b[2]);
    tools.setMatrixAt(i, tmpM);
    fab.equipIndex.set(eq.ids[i], i);
  }
  Object.assign(fab, { equipIds: eq.ids, equipKind: eq.kind, equipFamily: eq.family, equipBox: eq.box });
  scene.add(tools);
  fab.meshes.tools = tools;
  // lot counts: one billboard per tool, a digit atlas picked per instance (one draw call)
  fab.meshes.lots = lotBadges(eq);
  scene.add(fab.meshes.lots);
  // rails: one line set
  const sg = sc.segments;
  fab.segXYZ = sg.xyz;
  fab.segLen = sg.length;
  sg.ids.forEach((id, i) => fab.segIndex.set(id, i));
  const railGeo = new THREE.BufferGeometry();
  railGeo.setAttribute("position", new THREE.Float32BufferAttribute(sg.xyz, 3));
  scene.add(new THREE.LineSegments(railGeo, new THREE.LineBasicMaterial({ color: "#9aa4b1" })));
  // ports: one point set
  const portGeo = new THREE.BufferGeometry();
  portGeo.setAttribute("position", new THREE.Float32BufferAttribute(sc.ports, 3));
  scene.add(new THREE.Points(portGeo, new THREE.PointsMaterial({ color: "#c6ccd4", size: 0.35 })));
  // vehicles: instanced boxes hanging under the rail (matrices set every frame by the page)
  const vs = sc.vehicles;
  const vGeo = new THREE.BoxGeometry(0.9, 0.9, 0.6).translate(0, 0, -0.35);
  const vMesh = new THREE.InstancedMesh(vGeo, new THREE.MeshLambertMaterial(), Math.max(vs.ids.length, 1));
  vMesh.count = vs.ids.length;
  vMesh.instanceMatrix.setUsage(THREE.DynamicDrawUsage);
  vs.ids.forEach((id, i) => fab.vehIndex.set(id, i));
  fab.vehIds = vs.ids;
  fab.park = vs.ids.map((_, i) => [vs.segment[i], vs.offset[i]]); // where the scene parks them
  fab.centre = [cx, cy, 0];
  scene.add(vMesh);
  fab.meshes.vehicles = vMesh;
  // the selection: one white wire box around the selected tool or vehicle
  const edges = new THREE.EdgesGeometry(new THREE.BoxGeometry(1, 1, 1).translate(0, 0, 0.5));
  fab.meshes.selection = new THREE.LineSegments(edges, new THREE.LineBasicMaterial({ color: "#ffffff" }));
  fab.meshes.selection.visible = false;
  scene.add(fab.meshes.selection);
  // camera over the fab
  camera.position.set(cx, cy - span * 0.75, span * 0.95);
  controls.target.set(cx, cy, 0);
  camera.far = span * 10;
  camera.updateProjectionMatrix();
  controls.update();
  return fab;
}

function lotBadges(eq) {
  const cells = ["", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"];
  const c = document.createElement("canvas");
  c.width = 64 * cells.length; c.height = 64;
  const g = c.getContext("2d");
  g.font = "bold 40px sans-serif"; g.textAlign = "center"; g.textBaseline = "middle";
  cells.forEach((t, i) => {
    if (!t) return;
    g.fillStyle = "#ffffff"; g.beginPath(); g.arc(64 * i + 32, 32, 30, 0, 2 * Math.PI); g.fill();
    g.fillStyle = "#111111"; g.font = t.length > 1 ? "bold 26px sans-serif" : "bold 40px sans-serif";
    g.fillText(t, 64 * i + 32, 34);
  });
  const tex = new THREE.CanvasTexture(c);
  const n = eq.ids.length;
  const geo = new THREE.InstancedBufferGeometry();
  const quad = new THREE.PlaneGeometry(1, 1);
  geo.index = quad.index;
  geo.setAttribute("position", quad.getAttribute("position"));
  geo.setAttribute("uv", quad.getAttribute("uv"));
  const at = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    at[3 * i] = eq.box[6 * i]; at[3 * i + 1] = eq.box[6 * i + 1];
    at[3 * i + 2] = eq.box[6 * i + 2] + eq.box[6 * i + 5] + 0.8;
  }
  geo.setAttribute("at", new THREE.InstancedBufferAttribute(at, 3));
  const cell = new THREE.InstancedBufferAttribute(new Float32Array(n), 1);
  cell.setUsage(THREE.DynamicDrawUsage);
  geo.setAttribute("cell", cell);
  geo.instanceCount = n;
  const mat = new THREE.ShaderMaterial({
    uniforms: { atlas: { value: tex }, cells: { value: cells.length }, size: { value: 1.4 } },
    transparent: true,
    depthWrite: false,
    vertexShader: `
      attribute vec3 at; attribute float cell; uniform float size; varying vec2 vUv; varying float vCell;
      void main() {
        vUv = uv; vCell = cell;
        vec4 mv = modelViewMatrix * vec4(at, 1.0);
        mv.xy += position.xy * size * (cell > 0.5 ? 1.0 : 0.0);
        gl_Position = projectionMatrix * mv;
      }`,
    fragmentShader: `
      uniform sampler2D atlas; uniform float cells; varying vec2 vUv; varying float vCell;
      void main() {
        vec4 c = texture2D(atlas, vec2((vCell + vUv.x) / cells, vUv.y));
        if (c.a < 0.1) discard;
        gl_FragColor = c;
      }`,
  });
  const mesh = new THREE.Mesh(geo, mat);
  mesh.frustumCulled = false;
  return mesh;
}

/** The world point ``offset`` m along rail segment ``seg`` (clamped), or null if unknown. */
export function pointOn(fab, seg, offset) {
  const i = fab.segIndex.get(seg);
  if (i === undefined) return null;
  const x = fab.segXYZ, L = fab.segLen[i];
  const f = L > 0 ? Math.min(Math.max(offset / L, 0), 1) : 0;
  const a = 6 * i;
  return [x[a] + (x[a + 3] - x[a]) * f, x[a + 1] + (x[a + 4] - x[a + 1]) * f, x[a + 2] + (x[a + 5] - x[a + 2]) * f];
}
