// A small typed client for the Portcullis API: openapi-fetch over the types that
// openapi-typescript generates from api/openapi.yaml (src/schema.d.ts), plus a middleware
// that sends the stored access token and refreshes it once when it has expired.
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

/** An RFC 9457 problem document; every error of the API is one (application/problem+json). */
export type Problem = components["schemas"]["Problem"];
export type User = components["schemas"]["User"];
export type TokenPair = components["schemas"]["TokenPair"];

/** True when x has the required members of a Problem: type, title, status and code. */
export function isProblem(x: unknown): x is Problem {
  if (typeof x !== "object" || x === null) return false;
  const p = x as Record<string, unknown>;
  return (
    typeof p["type"] === "string" &&
    typeof p["title"] === "string" &&
    typeof p["status"] === "number" &&
    typeof p["code"] === "string"
  );
}

/** Where the client keeps its token pair. The default keeps it in memory only. */
export interface TokenStore {
  get(): TokenPair | undefined;
  set(pair: TokenPair | undefined): void;
}

export function memoryTokenStore(initial?: TokenPair): TokenStore {
  let pair = initial;
  return {
    get: () => pair,
    set: (next) => {
      pair = next;
    },
  };
}

export interface PortcullisClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** Token storage; an in-memory store when omitted. */
  tokens?: TokenStore;
  /** Called after every change of the stored pair: a refresh (the new pair) or a dead session (undefined). */
  onTokens?: (pair: TokenPair | undefined) => void;
}

export interface PortcullisAuth {
  /** The stored token pair, if any. */
  readonly tokens: TokenPair | undefined;
  /** Store a pair, such as the answer of POST /api/v1/auth/login. */
  set(pair: TokenPair): void;
  /** Forget the stored pair (for example after POST /api/v1/auth/logout). */
  clear(): void;
  /**
   * Spend the stored refresh token for a new pair and store it. Calls made while one refresh
   * is under way share it: refresh tokens are single use, and a second concurrent refresh with
   * the same token would get 409 refresh-token-race. A refresh that gets it all the same (a
   * client sharing the store, in another tab, spent the token first) waits up to 5 s for the
   * winner's pair to reach the store and resolves to it; with the default memory store, which
   * no one else writes, it clears the spent pair at once and resolves to undefined. Resolves to
   * undefined when there is no refresh token or the server refuses it (on 401 or another 4xx
   * but 408 and 429 the stored pair is cleared), when it fails for now (408, 429, 5xx: the pair
   * is kept), and when the pair is set or cleared while the refresh is under way (the pair set
   * then stays). A call whose automatic refresh failed for now gets that refresh's answer (its
   * status, Retry-After and problem) instead of its own 401.
   */
  refresh(): Promise<TokenPair | undefined>;
}

export type PortcullisClient = Client<paths> & { readonly auth: PortcullisAuth };

/** Paths that take no bearer token; a 401 from them is never answered with a refresh. */
const PUBLIC_PATHS: ReadonlySet<string> = new Set([
  "/api/v1/auth/register",
  "/api/v1/auth/login",
  "/api/v1/auth/refresh",
]);

/** The code of a 401 that a refresh can cure: the access token is expired (or otherwise invalid). */
const REFRESHABLE_CODE = "invalid-token";

interface Pending {
  /** An unread copy of the request, to send again after a refresh. */
  retry: Request;
  /** The access token the request went out with (a request with the caller's own header is not kept). */
  sentWith: string;
  /** The session of that token: the call is sent again only under it. */
  session: string;
}

export function createPortcullisClient(baseUrl: string, opts: PortcullisClientOptions = {}): PortcullisClient {
  const { tokens = memoryTokenStore(), onTokens, ...clientOptions } = opts;
  // Only a store the caller gave may be written by someone else (another tab).
  const shared = opts.tokens !== undefined;
  const client = createClient<paths>({ ...clientOptions, baseUrl });
  // Refreshes go through a client of their own, without the middleware below.
  const refresher = createClient<paths>({ ...clientOptions, baseUrl });

  const store = (pair: TokenPair | undefined): void => {
    tokens.set(pair);
    onTokens?.(pair);
  };

  // The refresh under way and the refresh token it spends: a pair set meanwhile (another
  // sign-in) gets a refresh of its own, never the old pair's successor.
  let inflight: { from: string; outcome: Promise<Outcome> } | undefined;
  const refreshOutcome = (): Promise<Outcome> => {
    const current = tokens.get();
    if (current === undefined) return Promise.resolve({ pair: undefined });
    if (inflight?.from === current.refresh_token) return inflight.outcome;
    const flight = {
      from: current.refresh_token,
      outcome: (async (): Promise<Outcome> => {
        const { data, error, response } = await refresher.POST("/api/v1/auth/refresh", {
          body: { refresh_token: current.refresh_token },
        });
        // Compare the tokens, not the objects: a store that serializes returns a new one each time.
        const still = tokens.get()?.refresh_token === current.refresh_token;
        if (data !== undefined) {
          // A pair set or cleared meanwhile stays: the successor of the one it replaced is dropped.
          if (!still) return { pair: undefined };
          store(data);
          return { pair: data };
        }
        // 409 refresh-token-race: another client spent this refresh token a moment ago. The
        // session is intact. One sharing the store (another browser tab, with the pair in
        // localStorage) puts its pair there once its answer arrives: wait for it. With this
        // client's own memory store no pair will come: drop the spent one, as on 401 (sent again
        // after the grace window, it would revoke the winner's session as theft).
        if (response.status === 409 && shared) return { pair: await raceWinner(tokens, current.refresh_token) };
        // 401: the refresh token is expired, reused or its session revoked; another 4xx but 408
        // and 429: a token the server will never take. Sign in again.
        const s = response.status;
        if (s >= 400 && s < 500 && s !== 408 && s !== 429) {
          if (still) store(undefined);
          return { pair: undefined };
        }
        // Other failures (408, 429, 5xx) are for now: the pair stays, and the call that needed
        // the refresh gets this answer rather than its own 401, which would read as signed out.
        const body = typeof error === "string" ? error : JSON.stringify(error);
        return { pair: undefined, failure: { status: response.status, statusText: response.statusText, headers: response.headers, body } };
      })().finally(() => {
        if (inflight === flight) inflight = undefined;
      }),
    };
    inflight = flight;
    return flight.outcome;
  };
  const refresh = async (): Promise<TokenPair | undefined> => (await refreshOutcome()).pair;

  const pending = new Map<string, Pending>();

  const middleware: Middleware = {
    onRequest({ request, schemaPath, id }) {
      if (PUBLIC_PATHS.has(schemaPath)) return undefined;
      if (request.headers.has("Authorization")) return undefined; // the caller's own token
      const current = tokens.get();
      if (current === undefined) return undefined;
      request.headers.set("Authorization", `Bearer ${current.access_token}`);
      // fetch() consumes the body; keep an unread copy for one retry.
      pending.set(id, { retry: request.clone(), sentWith: current.access_token, session: current.session_id });
      return request;
    },
    async onResponse({ response, id, options }) {
      const p = pending.get(id);
      pending.delete(id);
      if (p === undefined || response.status !== 401) return undefined;
      if ((await problemCode(response)) !== REFRESHABLE_CODE) return undefined;
      // Another call may have refreshed since this one went out: retry with its token.
      let current = tokens.get();
      if (current === undefined || current.access_token === p.sentWith) {
        const { pair, failure } = await refreshOutcome();
        // Each waiting call gets a fresh copy of a failed refresh's answer: a body reads once.
        if (failure !== undefined) return new Response(failure.body, failure);
        current = pair;
      }
      // Only under the session the call was made for: a pair of another session set meanwhile
      // (another sign-in) must not carry out, as its user, a call made for the first.
      if (current === undefined || current.session_id !== p.session) return response;
      p.retry.headers.set("Authorization", `Bearer ${current.access_token}`);
      // With the fetch options openapi-fetch gives every call (an undici dispatcher, say).
      return options.fetch(p.retry, clientOptions.requestInitExt);
    },
    onError({ id }) {
      pending.delete(id);
      return undefined;
    },
  };
  client.use(middleware);

  const auth: PortcullisAuth = {
    get tokens() {
      return tokens.get();
    },
    set: (pair) => store(pair),
    clear: () => store(undefined),
    refresh,
  };
  return Object.assign(client, { auth });
}

/** What a refresh came to: the new pair, or none; failure is the answer of one that failed for now (408, 429, 5xx). */
interface Outcome {
  pair: TokenPair | undefined;
  failure?: { status: number; statusText: string; headers: Headers; body: string };
}

/** How long a refresh that lost a race waits for the winner's pair, and how often it looks. */
const RACE_WAIT_MS = 5000;
const RACE_POLL_MS = 50;

/**
 * Resolves to the pair in tokens once it holds a refresh token other than spent, or to undefined
 * when it is cleared or RACE_WAIT_MS passes first.
 */
async function raceWinner(tokens: TokenStore, spent: string): Promise<TokenPair | undefined> {
  for (let waited = 0; ; waited += RACE_POLL_MS) {
    const pair = tokens.get();
    if (pair === undefined) return undefined;
    if (pair.refresh_token !== spent) return pair;
    if (waited >= RACE_WAIT_MS) return undefined;
    await new Promise((resolve) => setTimeout(resolve, RACE_POLL_MS));
  }
}

async function problemCode(response: Response): Promise<string | undefined> {
  try {
    const body: unknown = await response.clone().json();
    return isProblem(body) ? body.code : undefined;
  } catch {
    return undefined;
  }
}

export default createPortcullisClient;
