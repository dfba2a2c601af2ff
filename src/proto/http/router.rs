//! The router for simple data: exact paths (or prefixes ending in `/*`) to handlers,
//! per method. Built in ([`Router::with_builtins`]): `POST /echo`, `GET /api/stats`,
//! `GET /plaintext`.

use std::borrow::Cow;
use std::cell::Cell;
use std::time::Instant;

use super::parser::Head;
use super::response::Response;
use crate::net::PeerAddr;
use crate::selector::Backend;

/// The methods the server knows. Anything else gets 501 Not Implemented.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// Server-wide counters, shared by every connection of a server.
#[derive(Debug)]
pub struct Stats {
    /// Connections open now.
    pub connections_open: Cell<u64>,
    /// Connections accepted since start.
    pub connections_total: Cell<u64>,
    /// Requests answered (any status).
    pub requests: Cell<u64>,
    /// Response bytes handed to the kernel (heads and bodies, `100 Continue` too;
    /// counted as they leave, so a client that hangs up mid-body is not credited with
    /// the rest).
    pub bytes_sent: Cell<u64>,
    /// Bytes received (request heads and bodies).
    pub bytes_received: Cell<u64>,
    /// When the server was built.
    pub started: Instant,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            connections_open: Cell::new(0),
            connections_total: Cell::new(0),
            requests: Cell::new(0),
            bytes_sent: Cell::new(0),
            bytes_received: Cell::new(0),
            started: Instant::now(),
        }
    }
}

pub(crate) fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

impl Stats {
    /// The counters as a JSON object, with the backend's name, the uptime and the
    /// panics the process's reactors have contained
    /// ([`panics_contained_total`](crate::reactor::panics_contained_total)).
    pub fn to_json(&self, backend: Backend) -> String {
        format!(
            "{{\"connections_open\":{},\"connections_total\":{},\"requests\":{},\"bytes_sent\":{},\"bytes_received\":{},\"panics_contained\":{},\"backend\":\"{}\",\"uptime_secs\":{:.3}}}\n",
            self.connections_open.get(),
            self.connections_total.get(),
            self.requests.get(),
            self.bytes_sent.get(),
            self.bytes_received.get(),
            crate::reactor::panics_contained_total(),
            backend.name(),
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Resolves the `.` and `..` segments of an absolute, percent-decoded path
/// (RFC 3986 5.2.4), so the router and every handler see one spelling of a path:
/// `/files/../x` is `/x`, never something under `/files/`. Empty segments are kept
/// (`//a` stays `//a`), as the RFC does; a final `.` or `..` leaves a trailing slash.
///
/// `None` when a `..` would climb above `/`: the server answers 400 rather than
/// quietly serving `/` (RFC 3986's choice for references), because only a client
/// probing for a way out of the root sends one.
pub fn remove_dot_segments(path: &str) -> Option<Cow<'_, str>> {
    let rest = path.strip_prefix('/')?;
    // Every segment follows a `/`: without a `/.` there is no dot segment (the
    // common case, checked without splitting).
    if !path.as_bytes().windows(2).any(|w| w == b"/.")
        || !rest.split('/').any(|s| s == "." || s == "..")
    {
        return Some(Cow::Borrowed(path));
    }
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing = false;
    for s in rest.split('/') {
        trailing = matches!(s, "." | "..");
        match s {
            "." => {}
            ".." => {
                segs.pop()?;
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segs.is_empty() {
        out.push('/');
    }
    Some(Cow::Owned(out))
}

/// The path of a request target as routes and handlers see it: `raw_path` (the
/// target's path, [`split_target`](super::parser::split_target)) percent-decoded, which
/// must give UTF-8, then its dot segments resolved ([`remove_dot_segments`]).
/// `None`: the server answers 400 (not UTF-8, or a `..` above `/`).
pub fn decode_path(raw_path: &[u8]) -> Option<Cow<'_, str>> {
    let decoded = if raw_path.contains(&b'%') {
        percent_encoding::percent_decode(raw_path)
            .decode_utf8()
            .ok()?
    } else {
        // Nothing to decode (the common case): validated in one pass, not decoded
        // byte by byte.
        Cow::Borrowed(std::str::from_utf8(raw_path).ok()?)
    };
    // Dot segments resolved after decoding (`%2e%2e` is `..`) and before routing,
    // so no handler sees `/files/../x` under `/files/`.
    Some(match remove_dot_segments(&decoded)? {
        Cow::Borrowed(_) => decoded,
        Cow::Owned(p) => Cow::Owned(p),
    })
}

/// A request as handlers see it.
pub struct Request<'a> {
    pub(crate) head: &'a Head,
    /// The method token, validated as UTF-8 once by the connection.
    pub(crate) method: &'a str,
    pub(crate) raw: &'a [u8],
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) body: &'a [u8],
    pub(crate) peer: &'a PeerAddr,
    pub(crate) stats: &'a Stats,
    pub(crate) backend: Backend,
}

impl<'a> Request<'a> {
    /// The method (`GET`, ...), as sent (case-sensitive).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent (percent-encoded, with the query).
    pub fn target(&self) -> &'a [u8] {
        &self.raw[self.head.target.clone()]
    }

    /// The percent-decoded path, without the query, with `.` and `..` segments
    /// resolved ([`remove_dot_segments`]).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query string (after `?`), not decoded.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor_version(&self) -> u8 {
        self.head.minor
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(self.raw, name)
    }

    /// All headers in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let raw = self.raw;
        self.head
            .headers
            .iter()
            .map(move |(n, v)| (&raw[n.clone()], &raw[v.clone()]))
    }

    /// The body (decoded from chunks if it was chunked).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The client's address.
    pub fn peer(&self) -> &'a PeerAddr {
        self.peer
    }

    /// The server's counters.
    pub fn stats(&self) -> &'a Stats {
        self.stats
    }

    /// The reactor's backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// A route handler.
pub type HandlerFn = Box<dyn Fn(&Request<'_>) -> Response>;

struct Route {
    path: Cow<'static, str>,
    prefix: bool,
    methods: Vec<(Cow<'static, str>, HandlerFn)>,
}

/// What the router says about a request.
pub enum Routed<'r> {
    /// A handler for this path and method.
    Handler(&'r HandlerFn),
    /// The path is routed but not for this method: the methods it takes (for `Allow`).
    MethodNotAllowed(String),
    /// `OPTIONS` on a routed path: the methods it takes.
    Options(String),
    /// No route: fall through (static files or 404).
    NotFound,
}

/// Paths to handlers.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for r in &self.routes {
            let methods: Vec<&str> = r.methods.iter().map(|(m, _)| m.as_ref()).collect();
            l.entry(&(r.path.as_ref(), methods));
        }
        l.finish()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// A router with the built-in routes: `POST /echo` (the body back, same
    /// `Content-Type`), `GET /api/stats` (JSON counters) and `GET /plaintext`
    /// (`Hello, World!`, for benchmarks).
    pub fn with_builtins() -> Router {
        let mut r = Router::new();
        r.post("/echo", |req| {
            let ct = req
                .header("content-type")
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            Response::bytes(200, ct, req.body().to_vec())
        });
        r.get("/api/stats", |req| {
            Response::json(200, req.stats().to_json(req.backend()))
                .with_header("Cache-Control", "no-store")
        });
        r.get("/plaintext", |_| {
            Response::bytes(200, "text/plain", &b"Hello, World!"[..])
        });
        r
    }

    /// Routes `method` on `path` to `handler`. A path ending in `/*` matches every
    /// path under it. `GET` routes answer `HEAD` too (without the body).
    pub fn add(
        &mut self,
        method: impl Into<Cow<'static, str>>,
        path: impl Into<Cow<'static, str>>,
        handler: impl Fn(&Request<'_>) -> Response + 'static,
    ) -> &mut Router {
        let path = path.into();
        let (path, prefix) = match path.strip_suffix("/*") {
            Some(p) => (Cow::Owned(format!("{p}/")), true),
            None => (path, false),
        };
        let method = method.into();
        let i = match self
            .routes
            .iter()
            .position(|r| r.path == path && r.prefix == prefix)
        {
            Some(i) => i,
            None => {
                self.routes.push(Route {
                    path,
                    prefix,
                    methods: Vec::new(),
                });
                self.routes.len() - 1
            }
        };
        let methods = &mut self.routes[i].methods;
        methods.retain(|(m, _)| *m != method);
        methods.push((method, Box::new(handler)));
        self
    }

    /// Routes `GET` (and `HEAD`) on `path`.
    pub fn get(
        &mut self,
        path: impl Into<Cow<'static, str>>,
        handler: impl Fn(&Request<'_>) -> Response + 'static,
    ) -> &mut Router {
        self.add("GET", path, handler)
    }

    /// Routes `POST` on `path`.
    pub fn post(
        &mut self,
        path: impl Into<Cow<'static, str>>,
        handler: impl Fn(&Request<'_>) -> Response + 'static,
    ) -> &mut Router {
        self.add("POST", path, handler)
    }

    /// Finds the route for `method` on `path`: exact routes first, then the longest
    /// prefix.
    pub fn route(&self, method: &str, path: &str) -> Routed<'_> {
        let route = self
            .routes
            .iter()
            .find(|r| !r.prefix && r.path == path)
            .or_else(|| {
                self.routes
                    .iter()
                    .filter(|r| r.prefix && path.starts_with(r.path.as_ref()))
                    .max_by_key(|r| r.path.len())
            });
        let Some(route) = route else {
            return Routed::NotFound;
        };
        let lookup = if method == "HEAD" { "GET" } else { method };
        if let Some((_, h)) = route.methods.iter().find(|(m, _)| m == lookup) {
            return Routed::Handler(h);
        }
        let mut allow: Vec<&str> = route.methods.iter().map(|(m, _)| m.as_ref()).collect();
        if allow.contains(&"GET") {
            allow.push("HEAD");
        }
        allow.push("OPTIONS");
        let allow = allow.join(", ");
        if method == "OPTIONS" {
            Routed::Options(allow)
        } else {
            Routed::MethodNotAllowed(allow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        let n = |p| remove_dot_segments(p).map(Cow::into_owned);
        assert_eq!(n("/a/b"), Some("/a/b".into()));
        assert!(matches!(
            remove_dot_segments("/a/b"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(n("/files/../x"), Some("/x".into()));
        assert_eq!(n("/a/./b/../c/"), Some("/a/c/".into()));
        assert_eq!(n("/a/b/.."), Some("/a/".into()));
        assert_eq!(n("/a/."), Some("/a/".into()));
        assert_eq!(n("/a/.."), Some("/".into()));
        assert_eq!(n("/."), Some("/".into()));
        assert_eq!(n("/a//.."), Some("/a/".into()));
        assert_eq!(n("//a/./b"), Some("//a/b".into()));
        assert_eq!(n("/.hidden/..x"), Some("/.hidden/..x".into()));
        assert_eq!(n("/.."), None);
        assert_eq!(n("/a/../.."), None);
        assert_eq!(n("/a/../../b"), None);
        assert_eq!(n("a/b"), None);
    }

    #[test]
    fn routes_and_methods() {
        let mut r = Router::with_builtins();
        r.get("/files/*", |_| Response::empty(204));
        assert!(matches!(r.route("GET", "/plaintext"), Routed::Handler(_)));
        assert!(matches!(r.route("HEAD", "/plaintext"), Routed::Handler(_)));
        assert!(matches!(r.route("GET", "/plaintext/x"), Routed::NotFound));
        assert!(matches!(r.route("GET", "/files/a/b"), Routed::Handler(_)));
        assert!(matches!(r.route("GET", "/files"), Routed::NotFound));
        match r.route("GET", "/echo") {
            Routed::MethodNotAllowed(a) => assert_eq!(a, "POST, OPTIONS"),
            _ => panic!("expected 405"),
        }
        match r.route("OPTIONS", "/api/stats") {
            Routed::Options(a) => assert_eq!(a, "GET, HEAD, OPTIONS"),
            _ => panic!("expected options"),
        }
    }
}
