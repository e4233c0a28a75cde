/*!
 * appointease-realtime browser client: plain ES2017, no dependencies, no build step.
 *
 * Speaks the daemon's flat-JSON protocol (docs/protocol.md): reconnects with exponential
 * backoff and jitter, resumes its clientId (and its slot holds) with the resume token,
 * measures latency with a heartbeat, falls back to polling GET <base>/api/availability while
 * the socket is down, and turns requests into promises (every reply carries its requestId).
 *
 * <base> is the socket URL without its "/ws/<token>": behind nginx at
 * wss://example.com/realtime/ws/<token> the client polls https://example.com/realtime/api/availability,
 * against a bare daemon at ws://host:8080 it polls http://host:8080/api/availability.
 * AppointEaseRealtime.httpUrl(wsUrl, path) gives any other daemon URL the same way
 * (e.g. '/assets/realtime-client.js').
 *
 *   const rt = new AppointEaseRealtime({url: window.bookingAPI.wsUrl, query: {email}});
 *   rt.on('slot_taken', (f) => disableTime(f.time));
 *   rt.on('mode', (mode) => showMode(mode));            // websocket | polling | disconnected
 *   await rt.connect();
 *   await rt.watchSlot('2030-05-06', 3);
 *   const reply = await rt.lock('2030-05-06', '10:00', 3); // slot_locked or lock_failed
 */
(function (root, factory) {
  'use strict';
  const api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  } else {
    root.AppointEaseRealtime = api;
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  // The release version: the same as the plugin header's and the daemon's __version__.
  const VERSION = '0.2.0';

  const DEFAULTS = {
    url: null, // ws(s)://host:port/ (a path token is fine; the query is kept), or a function
    // returning one (or a promise of one), called before every attempt: fetch a fresh token there
    query: null, // extra query parameters, e.g. {email: 'ann@example.com'}
    pollUrl: null, // default: http(s)://<same host and base path>/api/availability
    reconnect: true,
    backoffInitial: 500, // ms before the first reconnect attempt
    backoffMax: 15000,
    backoffFactor: 2,
    jitter: 0.5, // this fraction of every delay is randomized
    connectTimeout: 3000, // a socket not open by then counts as failed (polling starts)
    heartbeatInterval: 10000, // ms between pings; 0 turns the heartbeat off
    heartbeatTimeout: 10000, // a ping unanswered this long drops the socket (then reconnect)
    requestTimeout: 10000,
    polling: true, // poll pollUrl for the watched day while the socket is down
    pollInterval: [5000, 10000], // [min, max] ms between polls
    resubscribe: true, // after a reconnect, watch the same day/appointments again
    WebSocket: null, // constructor to use (default: the global WebSocket)
    fetch: null, // fetch to use for polling (default: the global fetch)
  };

  // Close codes after which reconnecting with the same URL cannot help (docs/protocol.md).
  const FATAL_CLOSE = {
    1007: 'a frame that is not UTF-8',
    1009: 'a frame over 64 KB',
    4001: 'invalid token: connect with a new one',
    4002: 'token expired: connect with a fresh one',
    4009: 'this client resumed on a newer connection',
  };

  /** A refused or failed request: `code` is the daemon's error code or a local one. */
  class RealtimeError extends Error {
    constructor(code, message, frame) {
      super(message || code);
      this.name = 'RealtimeError';
      this.code = code;
      this.field = frame && frame.field !== undefined ? frame.field : null;
      this.frame = frame || null;
    }
  }

  function clock() {
    return typeof performance !== 'undefined' && performance.now ? performance.now() : Date.now();
  }

  /** The daemon's base path behind a socket path: without "/ws/<token>" (or "/ws") and the last "/". */
  function basePath(pathname) {
    return pathname.replace(/\/ws(\/[^/]*)?\/?$/, '').replace(/\/+$/, '');
  }

  /**
   * The http(s) URL of `path` (e.g. '/api/availability') on the daemon that serves socket URL
   * `wsUrl`, keeping its base path: wss://host/realtime/ws/T -> https://host/realtime/api/availability.
   */
  function httpFromWs(wsUrl, path) {
    const u = new URL(wsUrl);
    u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
    u.pathname = basePath(u.pathname) + path;
    u.search = '';
    u.hash = '';
    return u.toString();
  }

  function slotFields(date, time, employeeId) {
    return { date: date, time: time, employeeId: employeeId };
  }

  class AppointEaseRealtime {
    constructor(options) {
      this.options = Object.assign({}, DEFAULTS, options || {});
      if (!this.options.url) {
        throw new TypeError('AppointEaseRealtime: options.url is required');
      }
      this.clientId = null;
      this.resumeToken = null;
      this.resumed = false;
      this.isAnonymous = null;
      this.hello = null; // the last `connection` frame
      this._awaitingHello = false;
      this.mode = 'idle'; // idle | connecting | websocket | polling | disconnected
      this.latency = null; // last round trip in ms
      this.stats = {
        sent: 0,
        received: 0,
        errors: 0, // error frames received
        reconnects: 0, // successful reconnections
        attempts: 0, // connection attempts
        polls: 0,
        latencySum: 0,
        latencyCount: 0,
      };
      this._handlers = new Map();
      this._pending = new Map();
      this._waiters = [];
      this._ws = null;
      this._nextId = 0;
      this._idPrefix = 'r' + Math.random().toString(36).slice(2, 7) + '-';
      this._sequence = 0;
      this._attempt = 0;
      this._everConnected = false;
      this._closed = true;
      this._timers = { connect: null, reconnect: null, heartbeat: null, poll: null };
      this._opening = false;
      this._resolvedUrl = null;
      this._room = null; // {date, employeeId, time?} last watched day
      this._appointments = null; // {email} when following appointments
      this._selections = new Map(); // key -> {date, time, employeeId}
      this._holds = new Map(); // key -> {date, time, employeeId, endsAt (clock ms)}
      this._holdTimer = null;
      this.on('slot_locked', (f) => this._held(f, f.expiresIn));
      this.on('lock_expiring', (f) => this._held(f, f.expiresIn, 'expiring'));
      this.on('lock_expired', (f) => this._unheld(f, 'expired'));
      this.on('slot_unlocked', (f) => this._unheld(f, 'released'));
    }

    // ---- lifecycle ----

    /** Open the socket; resolves with the `connection` frame (after retries, if any). */
    connect() {
      if (this.connected && this.hello) return Promise.resolve(this.hello);
      const wait = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
      if (this._closed) {
        this._closed = false;
        this._open();
      }
      return wait;
    }

    /** Close for good: no reconnect, no polling; pending requests reject with `closed`. */
    close() {
      this._closed = true;
      this._clearTimers();
      clearTimeout(this._holdTimer);
      this._stopPolling();
      const ws = this._ws;
      this._ws = null;
      if (ws) {
        this._detach(ws);
        try {
          ws.close(1000, 'client closed');
        } catch (e) {
          /* already closing */
        }
      }
      this._rejectPending('closed', 'The client was closed');
      const waiters = this._waiters.splice(0);
      waiters.forEach((w) => w.reject(new RealtimeError('closed', 'The client was closed')));
      this._setMode('disconnected');
    }

    /** Drop the socket as a network failure would: the client reconnects and resumes. */
    drop() {
      if (this._ws) {
        try {
          this._ws.close(4000, 'client dropped');
        } catch (e) {
          /* already closing */
        }
      }
    }

    get connected() {
      return !!this._ws && this._ws.readyState === 1 && this.mode === 'websocket';
    }

    /** The http(s) URL of `path` on this client's daemon (same host and base path as the socket). */
    httpUrl(path) {
      const base = typeof this.options.url === 'function' ? this._resolvedUrl : this.options.url;
      return base ? httpFromWs(base, path) : null;
    }

    get averageLatency() {
      return this.stats.latencyCount ? this.stats.latencySum / this.stats.latencyCount : null;
    }

    // ---- events ----

    /** Call `fn(payload)` for a frame type or a client event; returns a function that unsubscribes. */
    on(type, fn) {
      if (!this._handlers.has(type)) this._handlers.set(type, new Set());
      this._handlers.get(type).add(fn);
      return () => this.off(type, fn);
    }

    off(type, fn) {
      const set = this._handlers.get(type);
      if (set) set.delete(fn);
    }

    /** The next `type` frame/event for which `predicate` holds; rejects after `timeout` ms. */
    once(type, predicate, timeout) {
      return new Promise((resolve, reject) => {
        let timer = null;
        const off = this.on(type, (payload) => {
          if (predicate && !predicate(payload)) return;
          off();
          if (timer) clearTimeout(timer);
          resolve(payload);
        });
        if (timeout) {
          timer = setTimeout(() => {
            off();
            reject(new RealtimeError('timeout', 'No ' + type + ' within ' + timeout + ' ms'));
          }, timeout);
        }
      });
    }

    _emit(type, payload) {
      const set = this._handlers.get(type);
      if (!set) return;
      Array.from(set).forEach((fn) => {
        try {
          fn(payload);
        } catch (e) {
          setTimeout(() => {
            throw e;
          });
        }
      });
    }

    // ---- sending ----

    /** Send one frame without waiting for an answer; false when the socket is not open. */
    send(frame) {
      return this.sendRaw(JSON.stringify(frame));
    }

    /** Send text as it is (tests use it to send malformed frames). */
    sendRaw(text) {
      const ws = this._ws;
      if (!ws || ws.readyState !== 1) return false;
      ws.send(text);
      this.stats.sent += 1;
      this._emit('sent', text);
      return true;
    }

    /**
     * Send `frame` with a fresh requestId; resolves with the first reply that carries it,
     * rejects with a RealtimeError for an `error` reply (code, field), a timeout or a drop.
     */
    request(frame, options) {
      const timeout = (options && options.timeout) || this.options.requestTimeout;
      return new Promise((resolve, reject) => {
        const ws = this._ws;
        if (!ws || ws.readyState !== 1 || !this.clientId) {
          reject(new RealtimeError('not_connected', 'The socket is not connected'));
          return;
        }
        this._nextId += 1;
        const requestId = this._idPrefix + this._nextId;
        const timer = setTimeout(() => {
          this._pending.delete(requestId);
          reject(new RealtimeError('timeout', 'No reply to ' + frame.type + ' within ' + timeout + ' ms'));
        }, timeout);
        this._pending.set(requestId, { resolve, reject, timer });
        this.send(Object.assign({}, frame, { requestId: requestId }));
      });
    }

    /** One heartbeat: resolves with {rtt, latency (server-measured), sequence, pong}. */
    ping(timeout) {
      this._sequence += 1;
      const sequence = this._sequence;
      const started = clock();
      return this.request({ type: 'ping', timestamp: Date.now(), sequence: sequence }, { timeout: timeout }).then(
        (pong) => {
          const rtt = clock() - started;
          this.latency = rtt;
          this.stats.latencySum += rtt;
          this.stats.latencyCount += 1;
          const result = { rtt: rtt, latency: pong.latency, sequence: sequence, pong: pong };
          this._emit('latency', result);
          return result;
        }
      );
    }

    // ---- protocol helpers: each resolves with the reply frame ----

    /** Hold a slot: resolves with `slot_locked` or `lock_failed` {reason}. */
    lock(date, time, employeeId, extra) {
      return this.request(Object.assign({ type: 'lock_slot' }, slotFields(date, time, employeeId), extra || {}));
    }

    /** The holds this client has, with the seconds each has left: [{date, time, employeeId,
     * expiresIn}]. The 'countdown' event carries the same list every second while any is held;
     * 'hold' {hold, why} fires when one is taken or extended ('held'), is about to end
     * ('expiring', from the daemon's lock_expiring), or ended ('expired', 'released'). */
    holdsLeft() {
      const now = clock();
      return Array.from(this._holds.values()).map((h) => ({
        date: h.date,
        time: h.time,
        employeeId: h.employeeId,
        expiresIn: Math.max(0, Math.round((h.endsAt - now) / 1000)),
      }));
    }

    _held(frame, expiresIn, why) {
      if (typeof expiresIn !== 'number') return;
      const hold = slotFields(frame.date, frame.time, frame.employeeId);
      hold.endsAt = clock() + expiresIn * 1000;
      this._holds.set([frame.date, frame.time, frame.employeeId].join('|'), hold);
      this._emit('hold', { hold: this._left(hold), why: why || 'held' });
      this._tick();
    }

    _unheld(frame, why) {
      const key = [frame.date, frame.time, frame.employeeId].join('|');
      const hold = this._holds.get(key);
      if (!hold) return;
      this._holds.delete(key);
      this._emit('hold', { hold: this._left(hold), why: why });
      this._tick();
    }

    _left(hold) {
      const expiresIn = Math.max(0, Math.round((hold.endsAt - clock()) / 1000));
      return { date: hold.date, time: hold.time, employeeId: hold.employeeId, expiresIn: expiresIn };
    }

    _tick() {
      clearTimeout(this._holdTimer);
      this._holdTimer = null;
      if (!this._holds.size) return;
      this._emit('countdown', this.holdsLeft());
      this._holdTimer = setTimeout(() => this._tick(), 1000);
    }

    /** Release a hold: resolves with `slot_unlocked` or `unlock_failed` {reason}. */
    unlock(date, time, employeeId, completed) {
      const frame = Object.assign({ type: 'unlock_slot' }, slotFields(date, time, employeeId));
      if (completed) frame.completed = true;
      return this.request(frame);
    }

    /** Soft selection ("someone is looking at this"); re-sent after a reconnect. As on the
     * daemon, it replaces this client's previous selection of the same day and employee. */
    select(date, time, employeeId) {
      this._selections.forEach((s, key) => {
        if (s.date === date && String(s.employeeId) === String(employeeId)) this._selections.delete(key);
      });
      this._selections.set([date, time, employeeId].join('|'), slotFields(date, time, employeeId));
      return this.request(Object.assign({ type: 'selecting_slot' }, slotFields(date, time, employeeId)));
    }

    deselect(date, time, employeeId) {
      this._selections.delete([date, time, employeeId].join('|'));
      return this.request(Object.assign({ type: 'deselect_slot' }, slotFields(date, time, employeeId)));
    }

    /**
     * Follow one day of one employee (remembered: re-watched after a reconnect, polled while
     * the socket is down). Resolves with the `availability_update` reply, or null when not
     * connected yet (the watch is sent on connect).
     */
    watchSlot(date, employeeId, time) {
      this._room = { date: date, employeeId: employeeId };
      if (time) this._room.time = time;
      if (this.mode === 'polling') this._pollSoon();
      if (!this.connected) return Promise.resolve(null);
      return this.request(Object.assign({ type: 'watch_slot' }, this._room));
    }

    unwatchSlot() {
      const room = this._room;
      this._room = null;
      if (!this.connected) return Promise.resolve(null);
      const frame = { type: 'unwatch_slot' };
      if (room) {
        frame.date = room.date;
        frame.employeeId = room.employeeId;
      }
      return this.request(frame);
    }

    /** Booked and held times of a day: over the socket, or over HTTP when it is down. */
    checkAvailability(date, employeeId) {
      if (this.connected) {
        return this.request({ type: 'check_availability', date: date, employeeId: employeeId });
      }
      return this._fetchAvailability(date, employeeId);
    }

    /** The signed-in customer's appointments, then `update` / `appointment_*` events. */
    watchAppointments(email) {
      this._appointments = { email: email || null };
      if (!this.connected) return Promise.resolve(null);
      return this.request(this._appointmentsFrame());
    }

    unwatchAppointments() {
      this._appointments = null;
      if (!this.connected) return Promise.resolve(null);
      return this.request({ type: 'unwatch_appointments' });
    }

    trackSession(step, fields) {
      return this.request(Object.assign({ type: 'booking_session', step: step }, fields || {}));
    }

    debugInfo() {
      return this.request({ type: 'get_debug' });
    }

    // ---- the socket ----

    _url(base) {
      const u = new URL(base);
      const query = this.options.query || {};
      Object.keys(query).forEach((k) => {
        if (query[k] !== null && query[k] !== undefined) u.searchParams.set(k, String(query[k]));
      });
      if (this.resumeToken) u.searchParams.set('resume', this.resumeToken);
      return u.toString();
    }

    _open() {
      const Ctor = this.options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!Ctor) throw new Error('AppointEaseRealtime: no WebSocket available');
      if (this.mode !== 'polling') this._setMode('connecting');
      this.stats.attempts += 1;
      const source = this.options.url;
      if (typeof source !== 'function') {
        this._openSocket(Ctor, source);
        return;
      }
      this._opening = true;
      Promise.resolve()
        .then(() => source())
        .then(
          (url) => {
            this._opening = false;
            if (!this._closed && !this._ws) this._openSocket(Ctor, url);
          },
          (err) => {
            this._opening = false;
            this._emit('socket_error', err);
            if (!this._closed && !this._ws) this._failed(null, 4003, 'no URL: ' + (err && err.message));
          }
        );
    }

    _openSocket(Ctor, base) {
      this._resolvedUrl = base;
      let ws;
      try {
        ws = new Ctor(this._url(base));
      } catch (e) {
        this._emit('socket_error', e);
        this._failed(null, 1006, String(e && e.message));
        return;
      }
      this._ws = ws;
      this._timers.connect = setTimeout(() => {
        if (this._ws === ws && this._awaitingHello) this._failed(ws, 4008, 'connect timeout');
      }, this.options.connectTimeout);
      ws.onmessage = (ev) => this._onMessage(ws, ev.data);
      ws.onerror = (ev) => {
        if (this._ws === ws) this._emit('socket_error', ev);
      };
      ws.onclose = (ev) => {
        if (this._ws === ws) this._failed(ws, ev.code, ev.reason);
      };
      this._awaitingHello = true;
    }

    _detach(ws) {
      ws.onmessage = null;
      ws.onerror = null;
      ws.onclose = null;
    }

    _onMessage(ws, data) {
      if (this._ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        this._emit('socket_error', e);
        return;
      }
      if (!frame || typeof frame !== 'object') return;
      this.stats.received += 1;
      if (frame.type === 'connection') {
        this._onHello(frame);
      } else if (frame.type === 'error') {
        this.stats.errors += 1;
      }
      const rid = frame.requestId;
      if (rid !== undefined && this._pending.has(rid)) {
        const pending = this._pending.get(rid);
        this._pending.delete(rid);
        clearTimeout(pending.timer);
        if (frame.type === 'error') {
          pending.reject(new RealtimeError(frame.code || 'error', frame.message, frame));
        } else {
          pending.resolve(frame);
        }
      }
      this._emit('message', frame);
      this._emit(frame.type, frame);
    }

    _onHello(frame) {
      clearTimeout(this._timers.connect);
      const reconnected = this._everConnected;
      this._awaitingHello = false;
      this.hello = frame;
      this.clientId = frame.clientId;
      this.resumeToken = frame.resumeToken || null;
      this.resumed = !!frame.resumed;
      this.isAnonymous = frame.isAnonymous;
      this._attempt = 0;
      if (reconnected) this.stats.reconnects += 1;
      this._everConnected = true;
      this._stopPolling();
      this._setMode('websocket');
      this._startHeartbeat();
      if (this.options.resubscribe) this._resubscribe();
      const waiters = this._waiters.splice(0);
      waiters.forEach((w) => w.resolve(frame));
      this._emit('open', frame);
    }

    _resubscribe() {
      const quiet = () => undefined;
      if (this._room) this.request(Object.assign({ type: 'watch_slot' }, this._room)).catch(quiet);
      if (this._appointments) this.request(this._appointmentsFrame()).catch(quiet);
      this._selections.forEach((s) => {
        this.request(Object.assign({ type: 'selecting_slot' }, s)).catch(quiet);
      });
    }

    _appointmentsFrame() {
      const frame = { type: 'watch_appointments' };
      if (this._appointments && this._appointments.email) frame.email = this._appointments.email;
      return frame;
    }

    _failed(ws, code, reason) {
      if (ws) {
        this._detach(ws);
        if (ws.readyState === 0 || ws.readyState === 1) {
          try {
            ws.close();
          } catch (e) {
            /* ignore */
          }
        }
      }
      if (ws && this._ws !== ws) return;
      this._ws = null;
      clearTimeout(this._timers.connect);
      this._stopHeartbeat();
      this._rejectPending('disconnected', 'The socket closed before the reply');
      this._emit('close', { code: code, reason: reason || '' });
      if (this._closed) return;
      if (this.options.polling && this._pollUrl()) {
        this._startPolling();
      } else {
        this._setMode('disconnected');
      }
      const fatal = FATAL_CLOSE[code];
      const renewable = (code === 4001 || code === 4002) && typeof this.options.url === 'function';
      if (this.options.reconnect && (!fatal || renewable)) {
        this._scheduleReconnect(code);
      } else {
        if (fatal) this._emit('fatal', { code: code, reason: reason || '', why: fatal });
        this._closed = true;
        this._stopPolling();
        this._setMode('disconnected');
        const waiters = this._waiters.splice(0);
        waiters.forEach((w) => w.reject(new RealtimeError('connect_failed', 'Closed with code ' + code)));
      }
    }

    /** Exponential backoff with jitter: the delay before reconnect attempt `attempt` (0-based). */
    backoffDelay(attempt) {
      const o = this.options;
      const base = Math.min(o.backoffMax, o.backoffInitial * Math.pow(o.backoffFactor, attempt));
      return Math.round(base * (1 - o.jitter) + Math.random() * base * o.jitter);
    }

    _scheduleReconnect(code) {
      // Flooding (1008) earns a longer pause: start further up the backoff curve.
      if (code === 1008) this._attempt = Math.max(this._attempt, 4);
      const delay = this.backoffDelay(this._attempt);
      this._attempt += 1;
      this._emit('reconnecting', { attempt: this._attempt, delay: delay, code: code });
      clearTimeout(this._timers.reconnect);
      this._timers.reconnect = setTimeout(() => {
        if (!this._closed && !this._ws && !this._opening) this._open();
      }, delay);
    }

    _rejectPending(code, message) {
      const pending = Array.from(this._pending.values());
      this._pending.clear();
      pending.forEach((p) => {
        clearTimeout(p.timer);
        p.reject(new RealtimeError(code, message));
      });
    }

    _setMode(mode) {
      if (this.mode === mode) return;
      this.mode = mode;
      this._emit('mode', mode);
    }

    _clearTimers() {
      Object.keys(this._timers).forEach((k) => {
        clearTimeout(this._timers[k]);
        clearInterval(this._timers[k]);
        this._timers[k] = null;
      });
    }

    // ---- heartbeat ----

    _startHeartbeat() {
      this._stopHeartbeat();
      const every = this.options.heartbeatInterval;
      if (!every) return;
      this._timers.heartbeat = setInterval(() => {
        const ws = this._ws;
        this.ping(this.options.heartbeatTimeout).catch((err) => {
          if (err.code === 'timeout' && this._ws === ws) this.drop();
        });
      }, every);
    }

    _stopHeartbeat() {
      clearInterval(this._timers.heartbeat);
      this._timers.heartbeat = null;
    }

    // ---- polling fallback ----

    _pollUrl() {
      return this.options.pollUrl || this.httpUrl('/api/availability');
    }

    _fetchAvailability(date, employeeId) {
      const f = this.options.fetch || (typeof fetch !== 'undefined' ? fetch.bind(null) : null);
      if (!f) return Promise.reject(new RealtimeError('unavailable', 'No fetch available'));
      const u = new URL(this._pollUrl());
      u.searchParams.set('date', date);
      u.searchParams.set('employeeId', String(employeeId));
      return f(u.toString(), { headers: { Accept: 'application/json' } }).then((res) =>
        res.json().then((body) => {
          if (!res.ok) throw new RealtimeError(body.code || 'unavailable', body.error || 'HTTP ' + res.status, body);
          return Object.assign(body, { source: 'polling' });
        })
      );
    }

    _startPolling() {
      this._setMode('polling');
      if (this._timers.poll) return;
      this._pollSoon();
    }

    _pollSoon() {
      clearTimeout(this._timers.poll);
      this._timers.poll = setTimeout(() => this._pollOnce(), 0);
    }

    _pollOnce() {
      if (this.mode !== 'polling') return;
      const next = () => {
        if (this.mode !== 'polling') return;
        const range = this.options.pollInterval;
        const lo = Array.isArray(range) ? range[0] : range;
        const hi = Array.isArray(range) ? range[1] : range;
        this._timers.poll = setTimeout(() => this._pollOnce(), lo + Math.random() * (hi - lo));
      };
      const room = this._room;
      if (!room) {
        next();
        return;
      }
      this.stats.polls += 1;
      this._fetchAvailability(room.date, room.employeeId)
        .then((frame) => {
          if (this.mode !== 'polling') return;
          this._emit('message', frame);
          this._emit(frame.type, frame);
        })
        .catch((err) => this._emit('poll_error', err))
        .then(next);
    }

    _stopPolling() {
      clearTimeout(this._timers.poll);
      this._timers.poll = null;
    }
  }

  AppointEaseRealtime.RealtimeError = RealtimeError;
  AppointEaseRealtime.httpUrl = httpFromWs;
  AppointEaseRealtime.VERSION = VERSION;
  AppointEaseRealtime.version = VERSION;
  AppointEaseRealtime.DEFAULTS = DEFAULTS;
  return AppointEaseRealtime;
});
