// Scenarios for tests/browser/test_realtime_client.py: evaluated in a page with the client.
(async () => {
  const RT = window.AppointEaseRealtime;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  class FakeWS {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeWS.all.push(this); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code) { if (this.readyState === 3) return; this.readyState = 3;
      setTimeout(() => this.onclose && this.onclose({ code: code || 1000, reason: '' })); }
    open() { this.readyState = 1; }
    receive(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
    hello(extra) { this.open(); this.receive(Object.assign({ type: 'connection', mode: 'websocket',
      clientId: 'anonymous_1_abcdefghi', resumeToken: 'anonymous_1_abcdefghi.mac', resumed: false,
      isAnonymous: true }, extra || {})); }
    serverClose(code) { this.readyState = 3; this.onclose({ code: code, reason: 'bye' }); }
    last() { return this.sent[this.sent.length - 1]; }
  }
  FakeWS.all = [];
  const out = {};
  const base = { WebSocket: FakeWS, heartbeatInterval: 0, backoffInitial: 10, backoffMax: 40 };

  // URL, requests, replies and errors
  const rt = new RT(Object.assign({ url: 'ws://h:8080/ws/TOK?a=1', query: { email: 'x@y.z' } }, base));
  const connected = rt.connect();
  const ws1 = FakeWS.all[0];
  ws1.hello();
  out.hello = (await connected).clientId;
  out.url = ws1.url;
  out.mode = rt.mode;
  const pinged = rt.request({ type: 'ping', sequence: 1 });
  const rid = ws1.last().requestId;
  ws1.receive({ type: 'pong', sequence: 1, requestId: rid });
  out.pong = (await pinged).sequence;
  const locking = rt.lock('2030-01-01', '10:00', 1);
  ws1.receive({ type: 'error', code: 'invalid_request', field: 'date', requestId: ws1.last().requestId });
  try { await locking; out.error = 'resolved'; } catch (e) { out.error = [e.name, e.code, e.field]; }
  const other = [];
  rt.on('slot_taken', (f) => other.push(f.time));
  ws1.receive({ type: 'slot_taken', time: '11:00' });
  out.events = other;

  // a drop: pending requests fail, the client resumes and re-subscribes
  rt.watchSlot('2030-01-01', 3).catch(() => undefined);
  rt.watchAppointments().catch(() => undefined);
  const inflight = rt.request({ type: 'ping' });
  ws1.serverClose(1006);
  try { await inflight; out.inflight = 'resolved'; } catch (e) { out.inflight = e.code; }
  await sleep(80);
  const ws2 = FakeWS.all[1];
  out.resumeUrl = ws2 && ws2.url;
  ws2.hello({ resumed: true });
  out.resubscribed = ws2.sent.map((f) => f.type + (f.employeeId ? ':' + f.employeeId : ''));
  out.reconnects = rt.stats.reconnects;
  rt.close();
  out.closedMode = rt.mode;

  // fatal close codes stop a fixed URL; a URL function gets a fresh token instead
  const fixed = new RT(Object.assign({ url: 'ws://h/' }, base));
  const fatal = [];
  fixed.on('fatal', (f) => fatal.push(f.code));
  fixed.connect().catch((e) => fatal.push(e.code));
  const count = FakeWS.all.length;
  FakeWS.all[count - 1].hello();
  FakeWS.all[count - 1].serverClose(4001);
  await sleep(80);
  out.fatal = { events: fatal, newSockets: FakeWS.all.length - count, mode: fixed.mode };
  let minted = 0;
  const renewing = new RT(Object.assign({ url: () => Promise.resolve('ws://h/ws/T' + (++minted)) }, base));
  renewing.connect();
  await sleep(0);
  FakeWS.all[FakeWS.all.length - 1].hello();
  FakeWS.all[FakeWS.all.length - 1].serverClose(4002);
  await sleep(80);
  out.renewed = { minted: minted, url: FakeWS.all[FakeWS.all.length - 1].url };
  renewing.close();

  // flooding (1008) waits longer
  const flood = new RT(Object.assign({}, base, { url: 'ws://h/', backoffInitial: 500, backoffMax: 15000 }));
  const delays = [];
  flood.on('reconnecting', (r) => delays.push(r.delay));
  flood.connect();
  FakeWS.all[FakeWS.all.length - 1].hello();
  FakeWS.all[FakeWS.all.length - 1].serverClose(1008);
  out.floodDelay = delays[0];
  flood.close();

  // backoff: exponential, capped, jittered within [base * (1 - jitter), base]
  const b = new RT({ url: 'ws://h/', WebSocket: FakeWS });
  out.backoff = [0, 1, 2, 3, 4, 5, 10].map((a) => {
    const lim = Math.min(15000, 500 * Math.pow(2, a));
    const xs = Array.from({ length: 50 }, () => b.backoffDelay(a));
    return xs.every((x) => x >= lim / 2 && x <= lim) && new Set(xs).size > 1;
  });

  // a socket that never opens: connect timeout, then polling of the watched day
  const fetched = [];
  const fakeFetch = (url) => { fetched.push(url); return Promise.resolve({ ok: true, status: 200,
    json: () => Promise.resolve({ type: 'availability_update', date: '2030-01-01', employeeId: 3, unavailable: ['10:00'] }) }); };
  const poller = new RT(Object.assign({}, base, { url: 'wss://site.example/ws/TOK', connectTimeout: 50,
    backoffInitial: 60000, backoffMax: 60000, pollInterval: [20, 30], fetch: fakeFetch }));
  const modes = [];
  const closes = [];
  const polled = [];
  poller.on('mode', (m) => modes.push(m));
  poller.on('close', (c) => closes.push(c.code));
  poller.on('availability_update', (f) => polled.push(f.source));
  poller.watchSlot('2030-01-01', 3);
  poller.connect();
  await sleep(200);
  out.polling = { modes: modes, closes: closes, first: fetched[0], polls: polled.length >= 2, source: polled[0] };
  poller.close();
  return out;
})
