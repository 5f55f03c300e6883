// The frame pane (js_on_load of a gr.HTML; `element`, `props`, `trigger`, `watch` come from Gradio).
// It draws the frame the server rendered, scaled to fill the pane, and reports what the pointer did in the
// rendered image's pixels: a click, a right or shift click, a drag (a box), or an example picked. What each
// means is decided on the server by the interaction layer; nothing here knows about objects or prompts.
// Before any media the pane is the drop zone: a dropped file goes to the upload box's own input.
const stage = document.createElement('div');
stage.className = 'sam2-stage';
const image = document.createElement('img');
image.alt = 'frame';
image.className = 'sam2-image';
image.draggable = false;
const band = document.createElement('div');
band.className = 'sam2-band';
const empty = document.createElement('div');
empty.className = 'sam2-drop';
stage.append(image, band, empty);
element.replaceChildren(stage);
window.sam2Frame = { trigger, element };

const DRAG_PX = 6;  // a press that moves less than this is a click
let press = null;   // {x, y} in client pixels where the button went down, and which button

const value = () => props.value || {};
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function drawEmpty(v) {
  const examples = (v.examples || []).map((e, i) =>
    `<button class="sam2-example" data-index="${i}" title="open ${escape(e.name)}">` +
    `<img src="${e.thumb}" alt=""><span>${escape(e.name)}</span></button>`).join('');
  empty.innerHTML =
    '<div class="sam2-drop-text"><b>Drop a video or an image here</b> or click to choose one' +
    '<br><small>MP4, MOV, WebM, MKV, AVI; JPEG, PNG, WebP, BMP</small></div>' +
    (examples ? `<div class="sam2-examples">or try an example: ${examples}</div>` : '');
}

function draw() {
  const v = value();
  const open = Boolean(v.image);
  if (open && image.getAttribute('src') !== v.image) image.src = v.image;
  image.hidden = !open;
  empty.hidden = open;
  stage.classList.toggle('sam2-open', open);
  if (open) empty.replaceChildren(); else drawEmpty(v);
  stage.dataset.frame = open ? String(v.frame) : '';
  stage.dataset.frames = String(v.num_frames || 0);
  stage.dataset.fps = String(v.fps || 0);
  stage.dataset.tool = v.tool || '';
  stage.dataset.version = String(v.version || 0);
  window.dispatchEvent(new CustomEvent('sam2-frame-drawn', { detail: v }));
}

// Where the image content lands in its box (object-fit: contain) and the rendered image pixel under a
// client position, as a continuous coordinate whose pixel centres sit at i + 0.5.
function toImage(clientX, clientY) {
  const r = image.getBoundingClientRect();
  const w = image.naturalWidth, h = image.naturalHeight;
  const scale = Math.min(r.width / w, r.height / h);
  const left = r.left + (r.width - w * scale) / 2, top = r.top + (r.height - h * scale) / 2;
  return { x: (clientX - left) / scale, y: (clientY - top) / scale, w, h, scale, left, top };
}

function showBand(a, b) {
  const s = stage.getBoundingClientRect();
  band.style.left = `${Math.min(a.x, b.x) - s.left}px`;
  band.style.top = `${Math.min(a.y, b.y) - s.top}px`;
  band.style.width = `${Math.abs(a.x - b.x)}px`;
  band.style.height = `${Math.abs(a.y - b.y)}px`;
  band.style.display = 'block';
}

stage.addEventListener('contextmenu', (event) => { if (value().image) event.preventDefault(); });
stage.addEventListener('pointerdown', (event) => {
  window.dispatchEvent(new Event('sam2-edit'));  // stops playback
  if (!value().image || event.target !== image) return;
  event.preventDefault();
  press = { x: event.clientX, y: event.clientY, button: event.button, shift: event.shiftKey };
  stage.setPointerCapture(event.pointerId);
});
stage.addEventListener('pointermove', (event) => {
  if (!press || press.button !== 0) return;
  const moved = Math.hypot(event.clientX - press.x, event.clientY - press.y);
  if (moved >= DRAG_PX) showBand(press, { x: event.clientX, y: event.clientY });
});
stage.addEventListener('pointerup', (event) => {
  if (!press) return;
  const start = press;
  press = null;
  band.style.display = 'none';
  const a = toImage(start.x, start.y), b = toImage(event.clientX, event.clientY);
  const shown = value().frame;
  const size = { w: a.w, h: a.h };
  // Pixel indices, as the server's display mapping takes them: the continuous position less half a pixel.
  const at = (p) => ({ x: p.x - 0.5, y: p.y - 0.5 });
  const moved = Math.hypot(event.clientX - start.x, event.clientY - start.y);
  if (start.button === 0 && moved >= DRAG_PX) {
    const p0 = at(a), p1 = at(b);
    trigger('select', { kind: 'drag', x0: p0.x, y0: p0.y, x1: p1.x, y1: p1.y, ...size, frame: shown });
    return;
  }
  if (start.button !== 0 && start.button !== 2) return;
  const p = at(a);
  const negative = start.button === 2 || start.shift;
  trigger('select', { kind: 'click', x: p.x, y: p.y, negative, ...size, frame: shown });
});
stage.addEventListener('pointercancel', () => { press = null; band.style.display = 'none'; });

// The drop zone: files go to the upload box (Gradio's own upload, its checks and size limit).
const uploadInput = () => document.querySelector('#sam2-upload input[type=file]');
empty.addEventListener('click', (event) => {
  const example = event.target.closest('.sam2-example');
  if (example) {
    trigger('select', { kind: 'example', index: Number(example.dataset.index) });
    return;
  }
  const input = uploadInput();
  if (input) input.click();
});
for (const name of ['dragenter', 'dragover']) {
  stage.addEventListener(name, (event) => { event.preventDefault(); stage.classList.add('sam2-dragging'); });
}
stage.addEventListener('dragleave', () => stage.classList.remove('sam2-dragging'));
stage.addEventListener('drop', (event) => {
  event.preventDefault();
  stage.classList.remove('sam2-dragging');
  const input = uploadInput();
  if (!input || !event.dataTransfer.files.length) return;
  const files = new DataTransfer();
  files.items.add(event.dataTransfer.files[0]);
  input.files = files.files;
  input.dispatchEvent(new Event('change', { bubbles: true }));
});

watch('value', draw);
draw();
