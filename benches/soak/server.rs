//! The server child (echo, HTTP and chat on one reactor) and what the soak reads
//! of it in `/proc`.

use std::io;
use std::time::{Duration, Instant};

use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::http::{HttpConfig, HttpServer, Router};
use readyloop::selector::Backend;

use crate::clients::Addrs;
use crate::common::child::{self, Ending};
use crate::common::procfs;
use crate::common::server::ServerProc;

/// Short timeouts, so misbehaving clients are recycled within the run.
pub fn stream_listen() -> ListenConfig {
    let mut l = ListenConfig::default();
    l.stream.close_timeout = Duration::from_secs(2);
    l
}

/// The hidden `--serve BACKEND` mode: echo, HTTP and the chat's line protocol on one
/// reactor, `ready ECHO HTTP CHAT`, then the control protocol (`stop` or EOF: a
/// graceful shutdown).
pub fn serve(backend: Backend) -> ! {
    let _ = env_logger::builder()
        .parse_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let name = format!("soak server ({backend})");
    child::serve_reactor(&name, backend, Ending::Shutdown, false, |r| {
        let echo = r
            .listen_tcp_with(
                "127.0.0.1:0",
                Echo::factory(EchoOptions::default()),
                stream_listen(),
            )?
            .1;
        let http_cfg = HttpConfig {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(5),
            listen: stream_listen(),
            access_log: false,
            ..HttpConfig::default()
        };
        let http = HttpServer::new(http_cfg, Router::with_builtins())?
            .listen(r, "127.0.0.1:0")?
            .1;
        let mut chat_cfg = ChatConfig {
            registration_timeout: Duration::from_secs(5),
            ..ChatConfig::default()
        };
        chat_cfg.listen.stream.close_timeout = Duration::from_secs(2);
        chat_cfg.listen.stream.max_output = Some(256 << 10);
        let chat = ChatServer::new(chat_cfg);
        let line = chat.listen_lines(r, "127.0.0.1:0")?.1;
        Ok(vec![echo, http, line])
    })
}

/// Starts the soak's server child; its echo, HTTP and chat addresses.
pub fn spawn(backend: Backend) -> io::Result<(ServerProc, Addrs)> {
    let server = ServerProc::start("soak server", &[], &[backend.name().into()], &[])?;
    let at = |i| {
        server
            .addr_of(i)
            .ok_or_else(|| io::Error::other("soak server: fewer than 3 ports"))
    };
    let addrs = Addrs {
        echo: at(0)?,
        http: at(1)?,
        chat: at(2)?,
    };
    Ok((server, addrs))
}

#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub t: f64,
    pub rss_kb: u64,
    pub fds: u64,
    /// Server CPU (schedstat ns) so far.
    pub cpu_ns: u64,
}

pub fn sample(pid: u32, start: Instant) -> Point {
    Point {
        t: start.elapsed().as_secs_f64(),
        rss_kb: procfs::status_kb(pid, "VmRSS").unwrap_or(0),
        fds: procfs::fd_count(pid),
        cpu_ns: procfs::cpu_ns(pid).unwrap_or(0),
    }
}
