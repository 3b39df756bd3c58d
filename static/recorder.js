// Auscult phone recorder: capture raw PCM, show it live, stop by itself, send a 16-bit WAV
// to the desktop inbox with fetch, and keep (and retry) every recording until the desktop
// confirms it stored it. No websocket, no framework, no third-party code.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get('t') || '';
  // The patient/exam the desktop had open when it showed the QR code (pseudonymous text).
  const exam = (new URLSearchParams(location.search).get('exam') || '').slice(0, 100);
  const SITE_NAMES = { aortic: 'Aortic', pulmonic: 'Pulmonic', tricuspid: 'Tricuspid', mitral: 'Mitral' };

  // The browser's voice processing erases heart sounds: switch all of it off.
  const MIC_CONSTRAINTS = {
    audio: {
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
      channelCount: 1,
    },
    video: false,
  };
  const QUIET_PEAK = 0.005; // about -46 dBFS over the last 2 s: nothing audible is coming in
  const CLIP_PEAK = 0.99;
  const RETRY_DELAYS_S = [1, 2, 4, 8, 15];

  // Remembered choices; storage can be unavailable (private mode, old iOS): then not kept.
  const remembered = (key) => { try { return localStorage.getItem(key); } catch (e) { return null; } };
  const remember = (key, value) => { try { localStorage.setItem(key, value); } catch (e) { /* not kept */ } };

  const state = {
    site: SITE_NAMES[remembered('auscult.site')] ? remembered('auscult.site') : null,
    seconds: [10, 15, 30].includes(Number(remembered('auscult.seconds'))) ? Number(remembered('auscult.seconds')) : 15,
    paired: null, // null unknown, true, false
    minSeconds: 2, // the desktop's shortest accepted recording (from /api/session)
    rec: null, // the recording in progress
    items: [], // recordings not yet confirmed, and the last confirmed ones
  };
  let nextLocalId = 1;

  // ---------------------------------------------------------------------------------
  // messages
  // ---------------------------------------------------------------------------------
  function showAlert(text, bad) {
    const el = $('alert');
    el.textContent = text;
    el.className = bad ? 'alert bad' : 'alert';
    el.hidden = !text;
  }
  function setStatus(text, kind) {
    const el = $('status');
    el.textContent = text;
    el.className = 'status ' + (kind || '');
  }
  function setHint(text, kind) {
    const el = $('hint');
    el.textContent = text;
    el.className = 'hint ' + (kind || '');
  }
  function setLink(text, kind) {
    const el = $('link');
    el.textContent = text;
    el.className = 'chip ' + (kind || '');
  }
  const fmt = (s) => Math.floor(s / 60) + ':' + String(Math.floor(s % 60)).padStart(2, '0');

  // ---------------------------------------------------------------------------------
  // pickers
  // ---------------------------------------------------------------------------------
  function renderPickers() {
    document.querySelectorAll('[data-site]').forEach((b) => {
      b.setAttribute('aria-checked', String(b.dataset.site === state.site));
      b.disabled = !!state.rec;
    });
    document.querySelectorAll('[data-pt]').forEach((g) => {
      g.classList.toggle('on', g.dataset.pt === state.site);
    });
    document.querySelectorAll('[data-seconds]').forEach((b) => {
      b.setAttribute('aria-checked', String(Number(b.dataset.seconds) === state.seconds));
      b.disabled = !!state.rec;
    });
    if (!state.rec) $('total').textContent = fmt(state.seconds);
    const button = $('record');
    if (state.rec) {
      button.disabled = false;
      $('record-label').textContent = 'Stop';
    } else if (!isSecure()) {
      button.disabled = true;
      $('record-label').textContent = 'Needs https://';
    } else if (state.paired === false) {
      button.disabled = true;
      $('record-label').textContent = 'Not paired';
    } else if (!state.site) {
      button.disabled = true;
      $('record-label').textContent = 'Choose a site first';
    } else {
      button.disabled = false;
      $('record-label').textContent = 'Record ' + SITE_NAMES[state.site];
    }
  }

  function chooseSite(site) {
    if (state.rec) return;
    state.site = site;
    remember('auscult.site', site);
    renderPickers();
  }
  document.querySelectorAll('[data-site]').forEach((b) => b.addEventListener('click', () => chooseSite(b.dataset.site)));
  document.querySelectorAll('[data-pt]').forEach((g) => g.addEventListener('click', () => chooseSite(g.dataset.pt)));
  document.querySelectorAll('[data-seconds]').forEach((b) => b.addEventListener('click', () => {
    state.seconds = Number(b.dataset.seconds);
    remember('auscult.seconds', String(state.seconds));
    renderPickers();
  }));

  // ---------------------------------------------------------------------------------
  // pairing / connection
  // ---------------------------------------------------------------------------------
  async function checkSession() {
    if (!token) {
      state.paired = false;
      setLink('Not paired', 'bad');
      showAlert('This page is not paired with the desktop. Scan the QR code shown by Auscult on the computer.', true);
      renderPickers();
      return;
    }
    try {
      const res = await fetch('/api/session', { headers: { 'X-Auscult-Token': token }, cache: 'no-store' });
      if (res.status === 403) {
        state.paired = false;
        setLink('Not paired', 'bad');
        showAlert('This pairing code is out of date (Auscult was restarted). Scan the new QR code on the computer.', true);
      } else if (res.ok) {
        state.paired = true;
        const session = await res.json();
        if (Number(session.min_seconds) > 0) state.minSeconds = Number(session.min_seconds);
        setLink('Connected ✓', 'ok');
        if ($('alert').classList.contains('bad') && isSecure()) showAlert('');
      } else {
        setLink('Desktop not answering', 'bad');
      }
    } catch (e) {
      setLink('Desktop not reachable', 'bad');
    }
    renderPickers();
  }

  function isSecure() {
    return window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  }

  // ---------------------------------------------------------------------------------
  // capture
  // ---------------------------------------------------------------------------------
  function micErrorMessage(err) {
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
      return 'Microphone access was refused. Allow it, then tap Record again:\n' +
        '• Android Chrome: tap the icon left of the address → Permissions → Microphone → Allow\n' +
        '• iPhone: tap “aA” in the address bar → Website Settings → Microphone → Allow';
    }
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      return 'No microphone was found on this device.';
    }
    if (name === 'NotReadableError' || name === 'AbortError') {
      return 'The microphone is busy (another app or a call is using it). Close it and tap Record again.';
    }
    return 'The microphone could not be started (' + (name || err) + '). Reload the page and try again.';
  }

  async function startRecording() {
    if (!isSecure()) {
      showAlert(insecureMessage(), true);
      return;
    }
    showAlert('');
    setStatus('');
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
    } catch (err) {
      showAlert(micErrorMessage(err), true);
      return;
    }
    // The audio context is made after the microphone is open: on iOS the hardware rate can
    // change when capture starts, and a context made before it records at the wrong speed.
    // An open microphone also lifts the autoplay rule, so the context may start here.
    const AC = window.AudioContext || window.webkitAudioContext;
    const ctx = new AC();
    try {
      await ctx.resume();
    } catch (err) {
      stream.getTracks().forEach((t) => t.stop());
      ctx.close();
      showAlert('The audio system could not start (' + err + '). Reload the page and try again.', true);
      return;
    }
    const rate = ctx.sampleRate;
    const rec = {
      ctx, stream, rate,
      site: state.site,
      seconds: state.seconds,
      target: Math.round(state.seconds * rate),
      chunks: [], n: 0,
      blocks: [], // peak per 10 ms block for the waveform
      blockSize: Math.max(1, Math.round(rate / 100)),
      clipUntil: 0,
      lastChunkAt: performance.now(),
      wakeLock: null,
    };
    state.rec = rec;
    const source = ctx.createMediaStreamSource(stream);
    const mute = ctx.createGain();
    mute.gain.value = 0; // keep the graph pulling without playing the chest back
    try {
      if (!ctx.audioWorklet || typeof AudioWorkletNode === 'undefined') throw new Error('no worklet');
      await ctx.audioWorklet.addModule('/static/recorder-worklet.js');
      const node = new AudioWorkletNode(ctx, 'pcm-capture', {
        numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit',
      });
      node.port.onmessage = (e) => onChunk(rec, e.data);
      rec.node = node;
    } catch (e) {
      // Older Safari: ScriptProcessor still delivers PCM on the main thread.
      const node = ctx.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (ev) => onChunk(rec, new Float32Array(ev.inputBuffer.getChannelData(0)));
      rec.node = node;
    }
    source.connect(rec.node);
    rec.node.connect(mute);
    mute.connect(ctx.destination);
    rec.source = source;
    ctx.onstatechange = () => {
      if (state.rec === rec && ctx.state !== 'running') {
        abortRecording('Recording interrupted (the screen turned off or another app took the microphone). Tap Record again.');
      }
    };
    try {
      if (navigator.wakeLock) rec.wakeLock = await navigator.wakeLock.request('screen');
    } catch (e) { /* optional */ }
    document.body.dataset.state = 'recording';
    setHint('Listening…', '');
    renderPickers();
    requestAnimationFrame(draw);
  }

  function onChunk(rec, chunk) {
    if (state.rec !== rec) return;
    rec.lastChunkAt = performance.now();
    const room = rec.target - rec.n;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    rec.chunks.push(part);
    rec.n += part.length;
    for (let i = 0; i < part.length; i += rec.blockSize) {
      let peak = 0;
      const end = Math.min(part.length, i + rec.blockSize);
      for (let j = i; j < end; j++) {
        const v = Math.abs(part[j]);
        if (v > peak) peak = v;
      }
      rec.blocks.push(peak);
      if (peak >= CLIP_PEAK) rec.clipUntil = rec.n + rec.rate; // show the warning for 1 s
    }
    if (rec.blocks.length > 2000) rec.blocks.splice(0, rec.blocks.length - 1000);
    if (rec.n >= rec.target) finishRecording(); // automatic stop, sample-exact
  }

  function releaseRecorder(rec) {
    try { rec.source.disconnect(); rec.node.disconnect(); } catch (e) { /* already gone */ }
    rec.stream.getTracks().forEach((t) => t.stop());
    rec.ctx.onstatechange = null;
    rec.ctx.close();
    if (rec.wakeLock) rec.wakeLock.release().catch(() => {});
  }

  function abortRecording(message) {
    const rec = state.rec;
    if (!rec) return;
    state.rec = null;
    releaseRecorder(rec);
    document.body.dataset.state = 'idle';
    setStatus(message, 'bad');
    renderPickers();
  }

  function finishRecording() {
    const rec = state.rec;
    if (!rec) return;
    const stoppedAt = performance.now();
    state.rec = null;
    releaseRecorder(rec);
    document.body.dataset.state = 'idle';
    renderPickers();
    const seconds = rec.n / rec.rate;
    $('timer').textContent = fmt(seconds);
    $('progress').style.width = (100 * rec.n / rec.target).toFixed(1) + '%';
    $('level').style.width = '0';
    setHint('Recorded ' + seconds.toFixed(0) + ' s at the ' + SITE_NAMES[rec.site].toLowerCase() + ' site.', '');
    if (seconds < state.minSeconds) {
      setStatus('Too short (' + seconds.toFixed(1) + ' s): record at least ' + state.minSeconds + ' s.', 'bad');
      return;
    }
    const samples = new Float32Array(rec.n);
    let offset = 0;
    for (const c of rec.chunks) { samples.set(c, offset); offset += c.length; }
    const item = {
      localId: nextLocalId++,
      site: rec.site,
      seconds: Math.round(seconds),
      at: new Date(),
      wav: encodeWav(samples, rec.rate),
      stoppedAt,
      attempts: 0,
      status: 'sending',
    };
    state.items.unshift(item);
    // Also the recording's id for the desktop: a retry of a stored recording is not stored twice.
    item.key = (window.crypto && crypto.randomUUID)
      ? crypto.randomUUID()
      : item.at.getTime() + '-' + item.localId + '-' + Math.random().toString(36).slice(2);
    item.saved = persist(item);
    send(item);
  }

  // 16-bit little-endian mono PCM WAV.
  function encodeWav(samples, rate) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const v = new DataView(buffer);
    const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
    text(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); text(8, 'WAVE');
    text(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
    v.setUint16(34, 16, true); text(36, 'data'); v.setUint32(40, samples.length * 2, true);
    for (let i = 0, o = 44; i < samples.length; i++, o += 2) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      v.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return buffer;
  }

  // ---------------------------------------------------------------------------------
  // live view
  // ---------------------------------------------------------------------------------
  function draw() {
    const rec = state.rec;
    if (!rec) return;
    const elapsed = rec.n / rec.rate;
    $('timer').textContent = fmt(elapsed);
    $('progress').style.width = (100 * rec.n / rec.target).toFixed(1) + '%';
    const canvas = $('wave');
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr);
    const h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, w, h);
    const shown = 400; // 4 s of 10 ms blocks
    const blocks = rec.blocks.slice(-shown);
    let top = 0.02;
    for (const p of blocks) if (p > top) top = p;
    const step = w / shown;
    g.fillStyle = '#7fd1ff';
    for (let i = 0; i < blocks.length; i++) {
      const bar = Math.max(1, (blocks[i] / top) * (h / 2 - 2));
      g.fillRect(i * step, h / 2 - bar, Math.max(1, step - 0.5), bar * 2);
    }
    // level: the loudest block of the last 300 ms on a 60 dB scale
    const recent = rec.blocks.slice(-30);
    const peak = recent.length ? Math.max.apply(null, recent) : 0;
    const db = 20 * Math.log10(Math.max(peak, 1e-6));
    const level = $('level');
    level.style.width = Math.max(2, Math.min(100, (db + 60) / 60 * 100)).toFixed(0) + '%';
    const last2s = rec.blocks.slice(-200);
    const peak2s = last2s.length ? Math.max.apply(null, last2s) : 0;
    if (rec.n < rec.clipUntil) {
      level.className = 'clip';
      setHint('Too loud — clipping. Press a little more gently.', 'bad');
    } else if (elapsed > 1 && peak2s < QUIET_PEAK) {
      level.className = 'quiet';
      setHint('Too quiet — press the microphone firmly on the skin.', 'warn');
    } else {
      level.className = '';
      setHint(elapsed > 1 ? 'Good level — keep still.' : 'Listening…', elapsed > 1 ? 'ok' : '');
    }
    if (performance.now() - rec.lastChunkAt > 3000) {
      setHint('No sound is arriving from the microphone. Tap Stop and try again.', 'bad');
    }
    requestAnimationFrame(draw);
  }

  // ---------------------------------------------------------------------------------
  // sending: every recording stays here until the desktop says it stored it
  // ---------------------------------------------------------------------------------
  async function send(item) {
    clearTimeout(item.timer);
    item.status = 'sending';
    item.attempts += 1;
    renderItems();
    let res; let body = {};
    try {
      const into = exam ? '&exam=' + encodeURIComponent(exam) : '';
      res = await fetch('/api/recordings?site=' + encodeURIComponent(item.site) + into, {
        method: 'POST',
        headers: { 'Content-Type': 'audio/wav', 'X-Auscult-Token': token, 'X-Recording-Id': item.key },
        body: item.wav,
        cache: 'no-store',
      });
      try { body = await res.json(); } catch (e) { body = {}; }
    } catch (e) {
      res = null;
    }
    if (res && (res.status === 201 || res.status === 200) && body.stored) {
      item.status = 'sent';
      item.entryId = body.id;
      item.storedMs = Math.round(performance.now() - item.stoppedAt);
      item.wav = null;
      document.body.dataset.lastStoredMs = String(item.storedMs);
      document.body.dataset.lastEntryId = String(body.id);
      unpersist(item);
      if (state.items[0] === item) setStatus('Sent ✓ — it is on the desktop.', 'ok');
      if (body.warnings && body.warnings.length) item.note = body.warnings.join('; ');
      followAnswer(item);
      state.items = state.items.filter((x, i) => x.status !== 'sent' || i < 5);
    } else if (res && [400, 413, 415, 422].includes(res.status)) {
      // A final answer about this recording: sending it again would get the same one.
      item.status = 'refused';
      item.note = body.error || ('The desktop refused this recording (' + res.status + ').');
      unpersist(item);
      if (state.items[0] === item) setStatus('Not accepted: ' + item.note, 'bad');
    } else if (res && ![403, 408, 429, 502, 503, 504].includes(res.status)) {
      // The desktop has a problem that waiting will not fix (disk full, an error): keep the
      // recording on the phone and let the person send it again once it is fixed.
      item.status = 'held';
      item.note = body.error || ('The desktop answered ' + res.status + '.');
      if (state.items[0] === item) setStatus('Kept on this phone: ' + item.note, 'warn');
    } else {
      item.status = 'waiting';
      if (res && res.status === 403) {
        item.note = 'Not paired — scan the QR code again; the recording is kept.';
        state.paired = false;
        checkSession();
      } else {
        item.note = res
          ? 'The desktop answered ' + res.status + '.'
          : 'The desktop cannot be reached: is the phone on the same Wi-Fi, and is Auscult still running?';
      }
      const asked = res ? Number(res.headers.get('Retry-After')) : 0;
      const delay = Math.max(asked || 0,
        RETRY_DELAYS_S[Math.min(item.attempts - 1, RETRY_DELAYS_S.length - 1)]);
      item.retryAt = Date.now() + delay * 1000;
      item.timer = setTimeout(() => send(item), delay * 1000);
      if (state.items[0] === item) setStatus('Not sent yet — kept on this phone and retried. ' + item.note, 'warn');
    }
    renderItems();
  }

  // The person holding the phone sees what the desktop made of the recording.
  async function followAnswer(item, tries = 0) {
    if (tries > 60) return;
    let answer = null;
    try {
      const res = await fetch('/api/recordings/' + item.entryId, {
        headers: { 'X-Auscult-Token': token }, cache: 'no-store',
      });
      if (res.ok) answer = await res.json();
    } catch (e) { answer = null; }
    if (!answer || answer.status === 'analysing') {
      setTimeout(() => followAnswer(item, tries + 1), 500);
      return;
    }
    item.answer = answer;
    if (state.items[0] === item) {
      const kind = answer.label === 'normal' ? 'ok' : (answer.status === 'failed' ? 'bad' : 'warn');
      setStatus('Sent ✓ — ' + answer.say, kind);
    }
    document.body.dataset.lastAnswer = answer.label || answer.status;
    renderItems();
  }

  function retryAllNow() {
    state.items.filter((i) => i.status === 'waiting' || i.status === 'held').forEach(send);
  }
  window.addEventListener('online', retryAllNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') { checkSession(); retryAllNow(); }
  });

  function renderItems() {
    const list = $('items');
    list.textContent = '';
    $('sent').hidden = state.items.length === 0;
    for (const item of state.items) {
      const li = document.createElement('li');
      const what = document.createElement('span');
      const time = item.at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      what.textContent = SITE_NAMES[item.site] + ' · ' + item.seconds + ' s · ' + time;
      const st = document.createElement('span');
      st.className = 'st';
      if (item.status === 'sent') {
        const label = item.answer && item.answer.label;
        li.className = label === 'abnormal' ? 'bad' : (label === 'unsure' ? 'wait' : 'ok');
        st.textContent = item.answer && item.answer.label
          ? 'Sent ✓ · ' + item.answer.label + ' · quality ' + item.answer.quality
          : 'Sent ✓';
      } else if (item.status === 'sending') {
        li.className = 'wait';
        st.textContent = 'Sending…';
      } else if (item.status === 'waiting' || item.status === 'held') {
        li.className = 'wait';
        st.textContent = item.status === 'held' ? 'Kept here' : 'Not sent yet';
        st.title = item.note || '';
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = 'Retry now';
        b.addEventListener('click', () => send(item));
        st.appendChild(b);
      } else {
        li.className = 'bad';
        st.textContent = 'Not accepted';
      }
      li.append(what, st);
      if (item.note && item.status !== 'sent') li.title = item.note;
      list.appendChild(li);
    }
  }

  // Unconfirmed recordings also survive a reload or a killed tab (IndexedDB, best effort).
  let dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve) => {
        try {
          const req = indexedDB.open('auscult', 1);
          req.onupgradeneeded = () => req.result.createObjectStore('pending', { keyPath: 'key' });
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => resolve(null);
        } catch (e) { resolve(null); }
      });
    }
    return dbPromise;
  }
  function done(tx) {
    return new Promise((resolve) => { tx.oncomplete = resolve; tx.onerror = resolve; tx.onabort = resolve; });
  }
  async function persist(item) {
    const row = { key: item.key, site: item.site, seconds: item.seconds, at: item.at.getTime(), wav: item.wav };
    const d = await db();
    if (!d) return;
    try {
      const tx = d.transaction('pending', 'readwrite');
      tx.objectStore('pending').put(row);
      await done(tx);
    } catch (e) { /* storage full or unavailable: the copy in memory remains */ }
  }
  async function unpersist(item) {
    await item.saved; // a fast upload can beat the save: delete only after it
    const d = await db();
    if (!d || !item.key) return;
    try {
      const tx = d.transaction('pending', 'readwrite');
      tx.objectStore('pending').delete(item.key);
      await done(tx);
    } catch (e) { /* ignore */ }
  }
  async function restore() {
    const d = await db();
    if (!d) return;
    const req = d.transaction('pending').objectStore('pending').getAll();
    req.onsuccess = () => {
      for (const row of req.result || []) {
        if (!row.wav || !SITE_NAMES[row.site]) continue;
        const item = {
          localId: nextLocalId++, key: row.key, site: row.site, seconds: row.seconds,
          at: new Date(row.at), wav: row.wav, stoppedAt: performance.now(), attempts: 0, status: 'sending',
        };
        state.items.push(item);
        send(item);
      }
      renderItems();
    };
  }

  // ---------------------------------------------------------------------------------
  // start
  // ---------------------------------------------------------------------------------
  function insecureMessage() {
    return 'This page is not secure (it must open with https://), so the phone will not allow ' +
      'the microphone. Scan the QR code on the computer again, or type the https:// address it shows.';
  }

  $('record').addEventListener('click', () => {
    if (state.rec) {
      finishRecording();
    } else {
      startRecording().catch((e) => {
        if (state.rec) abortRecording('Recording failed: ' + e);
        else showAlert('Recording failed: ' + e, true);
      });
    }
  });

  function drawIdle() {
    const canvas = $('wave');
    const g = canvas.getContext('2d');
    g.fillStyle = '#8aa1b8';
    g.font = '15px sans-serif';
    g.textAlign = 'center';
    g.fillText('The heart sound will show here', canvas.width / 2, canvas.height / 2 + 5);
  }

  if (exam) {
    $('exam-id').textContent = exam; // text, never HTML
    $('exam').hidden = false;
  }
  renderPickers();
  drawIdle();
  if (!isSecure()) showAlert(insecureMessage(), true);
  checkSession();
  setInterval(() => { if (!state.rec) checkSession(); }, 15000);
  restore();
})();
