// The object panel (js_on_load of a gr.HTML): a row per object with its colour, key, name, stale and
// doubtful counts; click a row to select it, double-click the name (or press the pencil) to rename it in
// place, the cross removes it. Each action goes to the server, which decides what it does.
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function draw() {
  const v = props.value || {};
  const rows = v.rows || [];
  if (rows.length === 0) {
    element.innerHTML = `<div class="sam2-no-objects">${escape(v.empty || '')}</div>`;
    return;
  }
  element.innerHTML = rows.map((row) => {
    const flags = [row.stale ? `${row.stale} stale` : '', row.doubtful ? `${row.doubtful} doubtful` : '']
      .filter(Boolean).join(', ');
    return `<div class="sam2-object${row.selected ? ' sam2-selected' : ''}" data-id="${row.id}" ` +
      `title="click to select${row.key ? ' (key ' + row.key + ')' : ''}">` +
      `<i class="sam2-swatch" style="background:${row.color}"></i>` +
      `<span class="sam2-object-name">${row.key ? row.key + '. ' : ''}${escape(row.name)}</span>` +
      `<small class="sam2-flags">${flags}</small>` +
      `<button class="sam2-rename" title="rename" aria-label="rename ${escape(row.name)}">✎</button>` +
      `<button class="sam2-remove" title="remove" aria-label="remove ${escape(row.name)}">✕</button>` +
      '</div>';
  }).join('');
}

function rename(row) {
  const label = row.querySelector('.sam2-object-name');
  const rows = (props.value || {}).rows || [];
  const current = rows.find((r) => String(r.id) === row.dataset.id);
  if (!label || !current) return;
  const input = document.createElement('input');
  input.className = 'sam2-name-input';
  input.value = current.name;
  label.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = (keep) => {
    if (done) return;
    done = true;
    if (keep && input.value.trim() && input.value !== current.name) {
      trigger('select', { kind: 'rename', id: Number(row.dataset.id), name: input.value.trim() });
    } else {
      draw();
    }
  };
  input.addEventListener('keydown', (event) => {
    event.stopPropagation();
    if (event.key === 'Enter') finish(true);
    if (event.key === 'Escape') finish(false);
  });
  input.addEventListener('blur', () => finish(true));
}

element.addEventListener('click', (event) => {
  const row = event.target.closest('.sam2-object');
  if (!row || event.target.closest('.sam2-name-input')) return;
  window.dispatchEvent(new Event('sam2-edit'));
  const id = Number(row.dataset.id);
  if (event.target.closest('.sam2-remove')) trigger('select', { kind: 'remove', id });
  else if (event.target.closest('.sam2-rename')) rename(row);
  else trigger('select', { kind: 'select', id });
});
element.addEventListener('dblclick', (event) => {
  const row = event.target.closest('.sam2-object');
  if (row && event.target.closest('.sam2-object-name')) rename(row);
});

watch('value', draw);
draw();
