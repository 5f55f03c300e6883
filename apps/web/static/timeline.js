// The timeline (js_on_load of a gr.HTML): one row per object, labelled with its name and colour; a click on
// a row jumps to the frame under the pointer. The server draws each row's strip.
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function draw() {
  const v = props.value || {};
  const rows = v.rows || [];
  element.innerHTML = rows.length === 0 ? '' : rows.map((row) =>
    `<div class="sam2-track" data-id="${row.id}">` +
    `<span class="sam2-track-name"><i style="background:${row.color}"></i>${escape(row.name)}</span>` +
    `<img class="sam2-track-strip" src="${row.strip}" alt="timeline of ${escape(row.name)}" draggable="false">` +
    '</div>').join('');
}

element.addEventListener('click', (event) => {
  const strip = event.target.closest('.sam2-track-strip');
  const frames = (props.value || {}).num_frames || 0;
  if (!strip || frames < 1) return;
  window.dispatchEvent(new Event('sam2-edit'));
  const r = strip.getBoundingClientRect();
  const frame = Math.min(frames - 1, Math.max(0, Math.floor((event.clientX - r.left) / r.width * frames)));
  trigger('input', { kind: 'goto', frame });
});

watch('value', draw);
draw();
