// Smoke test of the SDK against a live Portcullis server whose base URL is in PORTCULLIS_URL.
// Build with `npm run build`, run with `npm run smoke` (or ./run-smoke.sh, which starts a
// throwaway server). Prints one line per step and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createPortcullisClient, isProblem, type Problem, type TokenPair, type User } from "./index.js";

const baseUrl = process.env["PORTCULLIS_URL"];
if (baseUrl === undefined || baseUrl === "") {
  console.error("smoke: set PORTCULLIS_URL to the base URL of a running server, e.g. http://127.0.0.1:8080");
  process.exit(2);
}

// Count what goes over the wire, to prove that concurrent 401s share a single refresh.
const wire = { refreshes: 0, requests: 0 };
const countingFetch: typeof fetch = (input, init) => {
  wire.requests++;
  const url = input instanceof Request ? input.url : String(input);
  if (new URL(url).pathname === "/api/v1/auth/refresh") wire.refreshes++;
  return fetch(input, init);
};

const client = createPortcullisClient(baseUrl, { fetch: countingFetch });

const suffix = `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
const email = `smoke-${suffix}@example.com`;
const username = `smoke_${suffix}`;
const password = `smoke passphrase ${randomBytes(8).toString("hex")}`;

let user: User | undefined;
let first: TokenPair | undefined;

/** Spoil the signature of an access token so that the server answers 401 invalid-token. */
function spoil(jwt: string): string {
  const last = jwt.at(-2) === "A" ? "B" : "A";
  return `${jwt.slice(0, -2)}${last}${jwt.slice(-1)}`;
}

const steps: Array<[string, () => Promise<string>]> = [
  [
    "readyz",
    async () => {
      const { data, error } = await client.GET("/readyz");
      assert.equal(error, undefined, `readyz failed: ${JSON.stringify(error)}`);
      assert.equal(data?.status, "ok");
      return `status=${data.status}`;
    },
  ],
  [
    "register",
    async () => {
      const { data, error, response } = await client.POST("/api/v1/auth/register", {
        body: { email, username, password, full_name: "Smoke Test" },
      });
      assert.equal(error, undefined, `register failed: ${JSON.stringify(error)}`);
      assert.equal(response.status, 201);
      assert.equal(data?.email, email);
      user = data;
      return `id=${data.id} email=${data.email}`;
    },
  ],
  [
    "login",
    async () => {
      const { data, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
      assert.equal(error, undefined, `login failed: ${JSON.stringify(error)}`);
      assert.ok(data);
      assert.equal(data.token_type, "Bearer");
      client.auth.set(data);
      first = data;
      return `session=${data.session_id} expires_in=${data.expires_in}s`;
    },
  ],
  [
    "me",
    async () => {
      const { data, error } = await client.GET("/api/v1/users/me");
      assert.equal(error, undefined, `me failed: ${JSON.stringify(error)}`);
      assert.equal(data?.id, user?.id);
      assert.equal(data.username, username);
      return `id=${data.id} matches`;
    },
  ],
  [
    "refresh",
    async () => {
      assert.ok(first);
      const { data, error } = await client.POST("/api/v1/auth/refresh", {
        body: { refresh_token: first.refresh_token },
      });
      assert.equal(error, undefined, `refresh failed: ${JSON.stringify(error)}`);
      assert.ok(data);
      assert.notEqual(data.access_token, first.access_token, "access token did not change");
      assert.notEqual(data.refresh_token, first.refresh_token, "refresh token did not rotate");
      assert.equal(data.session_id, first.session_id);
      client.auth.set(data);
      return "new access and refresh tokens differ from the old ones";
    },
  ],
  [
    "me with the refreshed token",
    async () => {
      const { data, error } = await client.GET("/api/v1/users/me");
      assert.equal(error, undefined, `me failed: ${JSON.stringify(error)}`);
      assert.equal(data?.id, user?.id);
      return `id=${data.id} matches`;
    },
  ],
  [
    "automatic refresh on 401 invalid-token (concurrent calls, one refresh)",
    async () => {
      const before = client.auth.tokens;
      assert.ok(before);
      client.auth.set({ ...before, access_token: spoil(before.access_token) });
      const refreshes = wire.refreshes;
      const [a, b, c, patched] = await Promise.all([
        client.GET("/api/v1/users/me"),
        client.GET("/api/v1/users/me"),
        client.GET("/api/v1/users/me"),
        // A call with a body: the retry must send the body again.
        client.PATCH("/api/v1/users/me", { body: { full_name: "Smoke Test Refreshed" } }),
      ]);
      for (const r of [a, b, c]) {
        assert.equal(r.error, undefined, `me failed: ${JSON.stringify(r.error)}`);
        assert.equal(r.data?.id, user?.id);
      }
      assert.equal(patched.error, undefined, `patch failed: ${JSON.stringify(patched.error)}`);
      assert.equal(patched.data?.full_name, "Smoke Test Refreshed");
      assert.equal(wire.refreshes - refreshes, 1, "concurrent 401s must share one refresh");
      const after = client.auth.tokens;
      assert.ok(after);
      assert.notEqual(after.refresh_token, before.refresh_token, "the stored pair was not replaced");
      return `4 calls answered 200 after ${wire.refreshes - refreshes} refresh`;
    },
  ],
  [
    "two tabs sharing one store: the tab that loses the refresh race takes the winner's pair",
    async () => {
      const before = client.auth.tokens;
      assert.ok(before);
      // Two browser tabs keeping the pair in localStorage: two clients, one serialized store,
      // each unaware of the other's refresh in flight.
      let saved = JSON.stringify({ ...before, access_token: spoil(before.access_token) });
      const shared = {
        get: () => JSON.parse(saved) as TokenPair,
        set: (pair: TokenPair | undefined) => {
          saved = JSON.stringify(pair ?? null);
        },
      };
      const refreshes = wire.refreshes;
      const tabs = [0, 1].map(() => createPortcullisClient(baseUrl, { fetch: countingFetch, tokens: shared }));
      const answers = await Promise.all(tabs.map((tab) => tab.GET("/api/v1/users/me")));
      for (const [i, r] of answers.entries()) {
        assert.equal(r.error, undefined, `tab ${i + 1}: me failed: ${JSON.stringify(r.error)}`);
        assert.equal(r.data?.id, user?.id);
      }
      const after = shared.get();
      assert.notEqual(after.refresh_token, before.refresh_token, "the shared pair was not replaced");
      client.auth.set(after);
      const { error } = await client.GET("/api/v1/users/me");
      assert.equal(error, undefined, `the session did not survive the race: ${JSON.stringify(error)}`);
      return `both tabs answered 200 after ${wire.refreshes - refreshes} refreshes; the session is intact`;
    },
  ],
  [
    "a refresh that lost a race with a store no one else writes drops the spent pair at once",
    async () => {
      const { data: pair, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
      assert.ok(pair, `login failed: ${JSON.stringify(error)}`);
      // Another process spent this pair's refresh token (the pair was copied there). The default
      // store is this client's memory: no winner's pair will ever reach it, so waiting is in vain,
      // and the spent token, sent again after the grace window, would revoke the session as theft.
      const winner = createPortcullisClient(baseUrl, { fetch: countingFetch });
      winner.auth.set(pair);
      assert.ok(await winner.auth.refresh(), "the winner's refresh failed");
      const loser = createPortcullisClient(baseUrl, { fetch: countingFetch });
      loser.auth.set(pair);
      const started = Date.now();
      assert.equal(await loser.auth.refresh(), undefined, "the losing refresh resolved to a pair");
      const waited = Date.now() - started;
      assert.ok(waited < 2000, `the losing refresh waited ${waited} ms for a pair that cannot come`);
      assert.equal(loser.auth.tokens, undefined, "the spent pair is still stored");
      const { error: after } = await winner.GET("/api/v1/users/me");
      assert.equal(after, undefined, `the winner's session did not survive: ${JSON.stringify(after)}`);
      return `resolved in ${waited} ms with the pair dropped; the winner's session is intact`;
    },
  ],
  [
    "a call whose refresh fails for now gets that answer (503, Retry-After), not 401, and keeps the pair",
    async () => {
      const { data: pair, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
      assert.ok(pair, `login failed: ${JSON.stringify(error)}`);
      // A stand-in, not the server: a fetch that answers the refresh as a server at capacity
      // would, until told the capacity is back.
      let busy = true;
      const busyFetch: typeof fetch = async (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (busy && new URL(url).pathname === "/api/v1/auth/refresh") {
          const problem = { type: "https://portcullis.dev/problems/overloaded", title: "Service Unavailable", status: 503, code: "overloaded" };
          return new Response(JSON.stringify(problem), {
            status: 503,
            headers: { "Content-Type": "application/problem+json", "Retry-After": "3" },
          });
        }
        return countingFetch(input, init);
      };
      const pc = createPortcullisClient(baseUrl, { fetch: busyFetch });
      const expired = { ...pair, access_token: spoil(pair.access_token) };
      pc.auth.set(expired);
      const calls = await Promise.all([pc.GET("/api/v1/users/me"), pc.GET("/api/v1/users/me")]);
      for (const { error: problem, response } of calls) {
        assert.equal(response.status, 503, `a call whose refresh got 503 answered ${response.status}`);
        assert.equal(response.headers.get("Retry-After"), "3");
        assert.ok(isProblem(problem), `not a problem: ${JSON.stringify(problem)}`);
        assert.equal(problem.code, "overloaded");
      }
      assert.equal(pc.auth.tokens?.refresh_token, pair.refresh_token, "the pair was dropped");
      busy = false;
      const { data, error: after } = await pc.GET("/api/v1/users/me");
      assert.equal(after, undefined, `me once the refresh works again: ${JSON.stringify(after)}`);
      assert.equal(data?.id, user?.id);
      return "both calls answered 503 with Retry-After 3; the kept pair refreshed once the service was back";
    },
  ],
  [
    "a refresh refused for good (400) clears the pair, and the call gets its own 401",
    async () => {
      const { data: pair, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
      assert.ok(pair, `login failed: ${JSON.stringify(error)}`);
      // A stand-in, not the server: a fetch that answers the refresh 400, as the server does to a
      // token it can never take.
      const badFetch: typeof fetch = async (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (new URL(url).pathname === "/api/v1/auth/refresh") {
          const problem = { type: "https://portcullis.dev/problems/validation-failed", title: "Bad Request", status: 400, code: "validation-failed" };
          return new Response(JSON.stringify(problem), { status: 400, headers: { "Content-Type": "application/problem+json" } });
        }
        return countingFetch(input, init);
      };
      const pc = createPortcullisClient(baseUrl, { fetch: badFetch });
      pc.auth.set({ ...pair, access_token: spoil(pair.access_token) });
      const { response } = await pc.GET("/api/v1/users/me");
      assert.equal(response.status, 401, `a call whose refresh got 400 answered ${response.status}`);
      assert.equal(pc.auth.tokens, undefined, "the pair refused for good is still stored");
      return "401 and the pair cleared";
    },
  ],
  [
    "a refresh under way never brings back a pair replaced or cleared meanwhile",
    async () => {
      const login = async (): Promise<TokenPair> => {
        const { data, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
        assert.ok(data, `login failed: ${JSON.stringify(error)}`);
        return data;
      };
      // A fetch that can hold the answer of the next refresh, and tells when a 401 comes back.
      let hold: { entered: () => void; released: Promise<void> } | undefined;
      let on401: (() => void) | undefined;
      const heldFetch: typeof fetch = async (input, init) => {
        const response = await countingFetch(input, init);
        const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
        if (response.status === 401) on401?.();
        const h = hold;
        if (h !== undefined && path === "/api/v1/auth/refresh") {
          hold = undefined;
          h.entered();
          await h.released;
        }
        return response;
      };
      const holdNextRefresh = (): { entered: Promise<void>; release: () => void } => {
        let entered = (): void => undefined;
        let release = (): void => undefined;
        const e = new Promise<void>((resolve) => (entered = resolve));
        hold = { entered, released: new Promise<void>((resolve) => (release = resolve)) };
        return { entered: e, release };
      };
      const a = await login();
      const b = await login();
      const pc = createPortcullisClient(baseUrl, { fetch: heldFetch });

      // Replaced: a new pair is set (another sign-in) while the old pair's refresh is under way;
      // a call with the new pair's expired token refreshes that pair, not the old one.
      pc.auth.set(a);
      let gate = holdNextRefresh();
      const old = pc.auth.refresh();
      await gate.entered;
      pc.auth.set({ ...b, access_token: spoil(b.access_token) });
      const got401 = new Promise<void>((resolve) => (on401 = resolve));
      const me = pc.GET("/api/v1/users/me");
      await got401;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the call is now after a refresh
      gate.release();
      assert.equal(await old, undefined, "the refresh of a replaced pair resolved to a pair");
      const { error } = await me;
      assert.equal(error, undefined, `me with the new pair failed: ${JSON.stringify(error)}`);
      assert.equal(pc.auth.tokens?.session_id, b.session_id, "the old pair's refresh overwrote the new pair");

      // Cleared: signed out while a refresh is under way.
      gate = holdNextRefresh();
      const late = pc.auth.refresh();
      await gate.entered;
      pc.auth.clear();
      gate.release();
      assert.equal(await late, undefined, "the refresh of a cleared pair resolved to a pair");
      assert.equal(pc.auth.tokens, undefined, "a refresh brought a cleared pair back");
      return "the pair set last stays; a cleared pair stays cleared";
    },
  ],
  [
    "a call whose 401 comes after another session's pair was set is not sent again under that session",
    async () => {
      const login = async (): Promise<TokenPair> => {
        const { data, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
        assert.ok(data, `login failed: ${JSON.stringify(error)}`);
        return data;
      };
      const a = await login();
      const b = await login(); // another sign-in: another session (of another user, as far as a client knows)
      const expired = spoil(a.access_token);
      // A fetch that holds the 401 of the call sent with a's expired token until released, and
      // counts the calls sent with b's token.
      let entered = (): void => undefined;
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (entered = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      let withB = 0;
      const heldFetch: typeof fetch = async (input, init) => {
        const request = new Request(input, init);
        const auth = request.headers.get("Authorization");
        if (auth === `Bearer ${b.access_token}`) withB++;
        const response = await countingFetch(request);
        if (auth === `Bearer ${expired}`) {
          entered();
          await released;
        }
        return response;
      };
      const pc = createPortcullisClient(baseUrl, { fetch: heldFetch });
      pc.auth.set({ ...a, access_token: expired });
      const call = pc.PATCH("/api/v1/users/me", { body: { full_name: "Meant For Session A" } });
      await held;
      pc.auth.set(b); // the app switches accounts while the call is out
      release();
      const { response } = await call;
      assert.equal(withB, 0, "the call made under session a was sent again with session b's token");
      assert.equal(response.status, 401, `the call answered ${response.status}, want its own 401`);
      assert.equal(pc.auth.tokens?.session_id, b.session_id, "the pair set last changed");
      return "its own 401; nothing sent with the other session's token";
    },
  ],
  [
    "the call sent again after a refresh keeps the client's requestInitExt (an undici dispatcher, say)",
    async () => {
      const { data: pair, error } = await client.POST("/api/v1/auth/login", { body: { email, password } });
      assert.ok(pair, `login failed: ${JSON.stringify(error)}`);
      // In Node, requestInitExt carries fetch options such as a dispatcher (a proxy, a client
      // certificate); a call must not go out without them.
      const ext = { marker: "ext" };
      const without: string[] = [];
      const watchingFetch: typeof fetch = (input, init) => {
        const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
        if ((init as Record<string, unknown> | undefined)?.["marker"] !== "ext") without.push(path);
        return countingFetch(input, init);
      };
      const pc = createPortcullisClient(baseUrl, { fetch: watchingFetch, requestInitExt: ext });
      pc.auth.set({ ...pair, access_token: spoil(pair.access_token) });
      const { error: me } = await pc.GET("/api/v1/users/me");
      assert.equal(me, undefined, `me failed: ${JSON.stringify(me)}`);
      assert.deepEqual(without, [], "calls sent without the client's requestInitExt");
      return "the first call, the refresh and the retry all carried it";
    },
  ],
  [
    "problem+json as a typed Problem",
    async () => {
      const { data, error, response } = await client.POST("/api/v1/auth/register", {
        body: { email, username: `${username}x`, password },
      });
      assert.equal(data, undefined);
      assert.ok(error, "registering the same email twice must fail");
      // error is typed as Problem by the schema: code and status need no cast.
      const problem: Problem = error;
      assert.ok(isProblem(problem));
      assert.equal(problem.status, 409);
      assert.equal(problem.code, "email-taken");
      assert.equal(response.status, 409);
      assert.match(response.headers.get("Content-Type") ?? "", /^application\/problem\+json/);
      return `status=${problem.status} code=${problem.code} title="${problem.title}"`;
    },
  ],
  [
    "logout",
    async () => {
      const { error, response } = await client.POST("/api/v1/auth/logout");
      assert.equal(error, undefined, `logout failed: ${JSON.stringify(error)}`);
      assert.equal(response.status, 204);
      return "204";
    },
  ],
  [
    "me after logout fails with 401",
    async () => {
      const refreshes = wire.refreshes;
      const { data, error, response } = await client.GET("/api/v1/users/me");
      assert.equal(data, undefined);
      assert.equal(response.status, 401);
      assert.ok(isProblem(error));
      assert.equal(error.status, 401);
      assert.notEqual(error.code, "invalid-token");
      assert.equal(wire.refreshes, refreshes, "a revoked session must not trigger a refresh");
      return `status=${error.status} code=${error.code}`;
    },
  ],
  [
    "refresh after logout is refused and clears the stored pair",
    async () => {
      const pair = await client.auth.refresh();
      assert.equal(pair, undefined);
      assert.equal(client.auth.tokens, undefined);
      return "tokens cleared";
    },
  ],
  [
    "a refused refresh clears a store that keeps the pair as JSON",
    async () => {
      // A store that serializes (localStorage, say) hands back a new object on every get().
      let saved: string | undefined = first === undefined ? undefined : JSON.stringify(first);
      let cleared = 0;
      const persisted = createPortcullisClient(baseUrl, {
        tokens: {
          get: () => (saved === undefined ? undefined : (JSON.parse(saved) as TokenPair)),
          set: (pair) => {
            saved = pair === undefined ? undefined : JSON.stringify(pair);
          },
        },
        onTokens: (pair) => {
          if (pair === undefined) cleared++;
        },
      });
      assert.notEqual(saved, undefined, "no pair to start from");
      assert.equal(await persisted.auth.refresh(), undefined);
      assert.equal(saved, undefined, "the dead pair is still stored");
      assert.equal(cleared, 1);
      return "store cleared, onTokens(undefined) once";
    },
  ],
];

let passed = 0;
let failed = 0;
for (const [i, [name, run]] of steps.entries()) {
  try {
    const detail = await run();
    passed++;
    console.log(`ok ${i + 1} - ${name}: ${detail}`);
  } catch (err) {
    failed++;
    console.log(`not ok ${i + 1} - ${name}`);
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    break;
  }
}
const skipped = steps.length - passed - failed;
console.log(`smoke: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 ? 1 : 0;
