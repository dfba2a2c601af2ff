//! UDP broadcast discovery, on every backend: servers and a finder on loopback in
//! process (`127.255.255.255`), and the `udp_discovery` example on a real subnet made
//! of network namespaces on a bridge.
//!
//! The namespace case needs root and iproute2. Where namespaces cannot be made it is
//! skipped with a note, except under `CI=true`, where that is a failure. It removes
//! what it creates (namespaces, and with them their links) even when it fails: a guard
//! does it on drop. Names carry the process id and a counter, so parallel runs do not
//! collide; the interfaces live inside the namespaces, so their names cannot collide.

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use readyloop::net::{Listen, UdpConfig};
use readyloop::proto::discovery::{DiscoveryServer, Finder, Found};
use readyloop::reactor::Config;
use readyloop::selector::Backend;

use support::*;

const SHARED: UdpConfig = UdpConfig {
    broadcast: true,
    reuse_addr: true,
};

per_backend!(
    /// Three servers share one port on loopback (bound to the loopback broadcast address,
    /// so nothing listens beyond this host); one probe to `127.255.255.255` finds each.
    fn loopback_finds_every_server(backend: Backend) {
        let (tx, rx) = mpsc::channel::<Vec<Found>>();
        let (lt, port) = spawn_loop(backend, Config::default(), move |r| {
            let mut port = 0;
            for name in ["alpha", "beta", "gamma"] {
                let offers = vec![format!("tftp://127.0.0.1:69{name}")];
                let (_, addr) = r
                    .bind_udp_with(
                        ("127.255.255.255", port),
                        DiscoveryServer::new(name, offers),
                        SHARED,
                    )
                    .unwrap();
                port = addr.port();
            }
            let target: SocketAddr = format!("127.255.255.255:{port}").parse().unwrap();
            let finder = Finder::new(target, Duration::from_millis(500), move |_, found| {
                let _ = tx.send(found);
            });
            let cfg = UdpConfig {
                broadcast: true,
                reuse_addr: false,
            };
            r.bind_udp_with("127.0.0.1:0", finder, cfg).unwrap();
            port
        });
        let mut found = rx.recv_timeout(DEADLINE).expect("the finder reports");
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["alpha", "beta", "gamma"], "{backend}: {found:?}");
        for f in &found {
            assert_eq!(f.from.port(), port);
            assert_eq!(f.offers, [format!("tftp://127.0.0.1:69{}", f.name)]);
        }
        // Garbage gets no answer.
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_broadcast(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.send_to(b"hello?", ("127.255.255.255", port)).unwrap();
        let mut buf = [0u8; 2048];
        assert!(
            s.recv_from(&mut buf).is_err(),
            "a stray datagram was answered"
        );
        // The finder closed its socket: only the three servers are left.
        eventually(DEADLINE, "the finder's socket closed", || {
            (lt.call(|ctx| ctx.handler_count()) == 3).then_some(())
        });
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------------

/// Runs `ip ARGS`; returns stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces made by this case, and the processes in them. Dropping it kills the
/// processes and deletes the namespaces (their veth links and the bridge go too).
struct Subnet {
    prefix: String,
    namespaces: Vec<String>,
    procs: Vec<ServerProcess>,
}

impl Subnet {
    /// `hosts` namespaces `PREFIX-hN` with `eth0` at `10.77.0.N/24`, on a bridge in
    /// namespace `PREFIX-br`. `Err` if the namespaces cannot be made.
    fn new(hosts: usize) -> Result<Subnet, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "rl-disc-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Subnet {
            prefix: prefix.clone(),
            namespaces: Vec::new(),
            procs: Vec::new(),
        };
        let br = format!("{prefix}-br");
        ip(&["netns", "add", &br])?;
        net.namespaces.push(br.clone());
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 1..=hosts {
            let ns = net.host(i);
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("10.77.0.{i}/24");
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &addr,
                "broadcast",
                "10.77.0.255",
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn host(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// `ip netns exec HOST udp_discovery --backend B ARGS...`.
    fn command(&self, i: usize, backend: Backend, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(i)])
            .arg(example("udp_discovery"))
            .args(["--backend", backend.name()])
            .args(args);
        cmd
    }
}

impl Drop for Subnet {
    fn drop(&mut self) {
        self.procs.clear();
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

per_backend!(
    /// Three servers on three hosts of a /24; a finder on a fourth host broadcasts to
    /// `10.77.0.255` and finds each of them at its own address.
    fn subnet_broadcast_in_namespaces(backend: Backend) {
        let mut net = match Subnet::new(4) {
            Ok(n) => n,
            Err(e) => {
                require(
                    false,
                    &format!("network namespaces ({e})"),
                    "root, iproute2",
                );
                return;
            }
        };
        for i in 1..=3 {
            let name = format!("host{i}");
            let offer = format!("tftp://10.77.0.{i}:6969");
            let cmd = net.command(
                i,
                backend,
                &[
                    "serve",
                    "--listen",
                    "0.0.0.0:7979",
                    "--name",
                    &name,
                    "--offer",
                    &offer,
                ],
            );
            let mut p = ServerProcess::spawn(cmd, backend);
            assert_eq!(p.ready_url(), "udp://0.0.0.0:7979");
            net.procs.push(p);
        }
        let out = net
            .command(
                4,
                backend,
                &["find", "--to", "10.77.0.255:7979", "--timeout-ms", "1000"],
            )
            .stdin(Stdio::null())
            .output()
            .expect("run the finder");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "3 found",
                "found host1 at 10.77.0.1:7979 offers tftp://10.77.0.1:6969",
                "found host2 at 10.77.0.2:7979 offers tftp://10.77.0.2:6969",
                "found host3 at 10.77.0.3:7979 offers tftp://10.77.0.3:6969",
            ],
            "{backend}"
        );
        drop(net);
    }
);
