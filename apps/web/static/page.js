() => {
  // The page's own script: keys, playback and the key sheet. Keys name commands of the interaction layer's
  // shared key map (COMMANDS is filled in by the server); a command with a button presses that button (the
  // same handler, queue and streaming), any other goes to the server as a key press.
  const commands = COMMANDS;
  const frameElement = () => document.querySelector('#sam2-frame .sam2-stage');
  const typing = (el) => el && (el.tagName === 'TEXTAREA' || el.isContentEditable ||
    (el.tagName === 'INPUT' && ['text', 'search', 'number', 'email', 'password', 'url'].includes(el.type)));

  // ---- playback: the next frame is asked for once the last one is drawn, at most at the clip's rate
  let playing = false;
  const playButton = () => document.querySelector('#cmd-play');
  const setPlaying = (on) => {
    playing = on;
    const button = playButton();
    if (button) button.textContent = on ? '⏸ Pause' : '▶ Play';
    document.body.classList.toggle('sam2-playing', on);
  };
  const drawn = (frame, timeoutMs) => new Promise((resolve) => {
    const done = (event) => {
      if (event && event.detail && event.detail.frame !== frame) return;
      window.removeEventListener('sam2-frame-drawn', done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    window.addEventListener('sam2-frame-drawn', done);
  });
  const step = async () => {
    while (playing) {
      const el = frameElement();
      const frames = Number(el.dataset.frames || 0), fps = Number(el.dataset.fps || 0) || 10;
      const next = Number(el.dataset.frame || 0) + 1;
      if (!window.sam2Frame || next >= frames) break;
      const started = performance.now();
      window.sam2Frame.trigger('input', { kind: 'goto', frame: next });
      await drawn(next, 10000);
      const wait = 1000 / fps - (performance.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    setPlaying(false);
  };
  window.sam2TogglePlay = async () => {
    if (playing) { setPlaying(false); return; }
    const el = frameElement();
    if (!el || !window.sam2Frame || Number(el.dataset.frames || 0) < 2) return;
    setPlaying(true);
    if (Number(el.dataset.frame) >= Number(el.dataset.frames) - 1) {
      window.sam2Frame.trigger('input', { kind: 'goto', frame: 0 });  // from the start again
      await drawn(0, 10000);
    }
    step();
  };
  window.addEventListener('sam2-edit', () => setPlaying(false));
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (playing && button && button.id !== 'cmd-play') setPlaying(false);
  }, true);
  document.addEventListener('input', (event) => {
    if (playing && event.target.closest('#sam2-slider')) setPlaying(false);
  }, true);

  // ---- the key sheet
  const toggleKeys = (show) => {
    const sheet = document.querySelector('#sam2-keys');
    if (sheet) sheet.classList.toggle('sam2-show', show ?? !sheet.classList.contains('sam2-show'));
  };
  window.sam2ToggleKeys = toggleKeys;

  // ---- keys
  document.addEventListener('keydown', (event) => {
    if (typing(event.target) || event.altKey) return;
    if (event.key === '?') { event.preventDefault(); toggleKeys(); return; }
    if (event.key === ' ' && !(event.target && event.target.tagName === 'BUTTON')) {
      event.preventDefault();
      window.sam2TogglePlay();
      return;
    }
    setPlaying(false);
    if (event.key === 'Escape') toggleKeys(false);
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let command = commands[key];
    if (event.ctrlKey || event.metaKey) {
      command = key === 'z' ? (event.shiftKey ? 'redo' : 'undo') : key === 'y' ? 'redo' : undefined;
    }
    if (!command) return;
    event.preventDefault();
    const button = document.querySelector('#cmd-' + command);
    if (button && !button.disabled) { button.click(); return; }
    if (button && command !== 'stop') return;  // Esc with nothing to stop still drops a half-given box
    if (window.sam2Frame) {
      window.sam2Frame.trigger('submit', { kind: 'key', key, ctrl: event.ctrlKey || event.metaKey,
        shift: event.shiftKey });
    }
  });
}
