//! The classroom UDP chat, joined to the shared chat state.
//!
//! Every datagram is one line of UTF-8 text (decoded lossily; a trailing newline is
//! ignored). From an address that has not joined:
//!
//! * `username@NAME` joins as `NAME` (a nickname as on every front end): the answer is
//!   `Welcome NAME! ...`, then the lobby's member list and history; the others see
//!   `* NAME has joined lobby`. A taken or malformed name gets `error: ...`.
//! * anything else gets `error: not joined; send username@NAME to join` (at most
//!   [`STRANGER_ERRORS`] such answers per second in all, so spoofed senders cannot use
//!   the server as a reflector).
//!
//! From a member:
//!
//! * `/leave` (or `/quit`) leaves: `Bye NAME`, and the others see `* NAME has quit`.
//! * `/who` lists the lobby.
//! * `username@OTHER` changes the nickname.
//! * anything else is a message, relayed to every member of the lobby, the sender
//!   included (the classroom behaviour), as `NAME:text`; line users see `<NAME> text`,
//!   IRC users a `PRIVMSG #lobby`. A datagram longer than
//!   [`ChatConfig::max_line`](super::ChatConfig::max_line) (a trailing newline not
//!   counted) is dropped with `error: message too long ...`.
//!
//! Every datagram the server sends is one line without its newline. A member silent for
//! [`ChatConfig::udp_idle`](super::ChatConfig::udp_idle) is removed (told
//! `Bye NAME (timed out)`, its leave announced); a sweep runs every quarter of that
//! while anyone is joined. A member over the flood limit has its messages (and renames)
//! dropped, and gets one `error: flood limit ...` per episode. At most
//! [`ChatConfig::max_udp_members`](super::ChatConfig::max_udp_members) members.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::state::{MemberId, MsgKind, TokenBucket, LOBBY};
use super::{decode, Endpoint, Flood, Gate, Hub};
use crate::net::{DatagramProtocol, Datagrams};
use crate::reactor::TimerId;

/// Most error answers per second to addresses that have not joined (all together).
pub const STRANGER_ERRORS: u32 = 100;

struct UdpMember {
    id: MemberId,
    last_seen: Instant,
    flood: Flood,
}

/// The UDP front end (one per socket).
pub struct UdpChat {
    hub: Rc<RefCell<Hub>>,
    members: HashMap<SocketAddr, UdpMember>,
    /// The flood buckets of addresses that left recently (at most `max_udp_members`,
    /// kept until their bucket would be full again), so leaving and joining again
    /// does not reset the flood limit: every join and leave is announced to the room.
    departed: HashMap<SocketAddr, (Flood, Instant)>,
    sweep: Option<TimerId>,
    strangers: TokenBucket,
}

impl std::fmt::Debug for UdpChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpChat")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl UdpChat {
    pub(crate) fn new(hub: Rc<RefCell<Hub>>) -> UdpChat {
        UdpChat {
            hub,
            members: HashMap::new(),
            departed: HashMap::new(),
            sweep: None,
            strangers: TokenBucket::new(STRANGER_ERRORS, f64::from(STRANGER_ERRORS)),
        }
    }

    fn reply(dg: &mut Datagrams<'_, '_>, to: SocketAddr, text: &str) {
        dg.send_to(text.as_bytes(), to);
    }

    fn sweep_every(&self) -> Duration {
        (self.hub.borrow().cfg.udp_idle / 4).max(Duration::from_millis(10))
    }

    fn welcome(dg: &mut Datagrams<'_, '_>, to: SocketAddr, name: &str) {
        let text = format!("Welcome {name}! You are in {LOBBY}; send /leave to leave.");
        Self::reply(dg, to, &text);
    }

    fn join(&mut self, dg: &mut Datagrams<'_, '_>, from: SocketAddr, name: &str, now: Instant) {
        if let Some(m) = self.members.get(&from) {
            self.rejoin(dg, from, m.id, name);
            return;
        }
        let mut hub = self.hub.borrow_mut();
        if self.members.len() >= hub.cfg.max_udp_members {
            super::client_warn(format_args!(
                "chat: udp member limit reached; refusing {from}"
            ));
            Self::reply(dg, from, "error: the chat is full");
            return;
        }
        // An address that left recently joins with the bucket it left with.
        let flood = match self.departed.remove(&from) {
            Some((mut flood, left_at)) => {
                if flood.check(now) != Gate::Pass {
                    self.departed.insert(from, (flood, left_at));
                    Self::reply(dg, from, "error: joining too often; wait a moment");
                    return;
                }
                flood
            }
            None => Flood::new(&hub.cfg),
        };
        let endpoint = Endpoint::Datagram {
            sock: dg.id(),
            addr: from,
        };
        let id = match hub
            .chat
            .register(name, &format!("udp@{}", from.ip()), endpoint)
        {
            Ok(id) => id,
            Err(e) => {
                Self::reply(dg, from, &format!("error: {e}"));
                return;
            }
        };
        log::info!("chat: {from} is {name} (udp)");
        self.members.insert(
            from,
            UdpMember {
                id,
                last_seen: now,
                flood,
            },
        );
        Self::welcome(dg, from, name);
        match hub.chat.join(id, LOBBY) {
            Ok(out) => hub.deliver(&out, dg),
            Err(e) => log::error!("chat: udp join lobby: {e}"),
        }
        drop(hub);
        if self.sweep.is_none() {
            let every = self.sweep_every();
            self.sweep = Some(dg.set_timer(every));
        }
    }

    /// `username@NAME` from member `id`: its own nickname again welcomes it back (to
    /// the lobby, if it was kicked from it); another one renames it.
    fn rejoin(&self, dg: &mut Datagrams<'_, '_>, from: SocketAddr, id: MemberId, name: &str) {
        let mut hub = self.hub.borrow_mut();
        let same = hub
            .chat
            .member(id)
            .is_some_and(|m| super::state::fold(&m.nick) == super::state::fold(name));
        if same {
            Self::welcome(dg, from, name);
            // Kicked from the lobby: joining again brings one back (if allowed).
            if !hub.chat.is_in(id, LOBBY) {
                match hub.chat.join(id, LOBBY) {
                    Ok(out) => hub.deliver(&out, dg),
                    Err(e) => Self::reply(dg, from, &format!("error: {e}")),
                }
            }
            return;
        }
        match hub.chat.rename(id, name) {
            Ok(out) => hub.deliver(&out, dg),
            Err(e) => Self::reply(dg, from, &format!("error: {e}")),
        }
    }

    /// A line from member `id`: `/leave`, `/who`, or a message to the lobby.
    fn member_line(
        &mut self,
        dg: &mut Datagrams<'_, '_>,
        from: SocketAddr,
        id: MemberId,
        text: &str,
    ) {
        match text {
            "" => {}
            "/leave" | "/quit" => {
                let nick = self
                    .hub
                    .borrow()
                    .chat
                    .member(id)
                    .map(|m| m.nick.to_string())
                    .unwrap_or_default();
                Self::reply(dg, from, &format!("Bye {nick}"));
                self.leave(dg, from, "Left the chat");
            }
            "/who" => {
                let hub = self.hub.borrow();
                let names: Vec<String> = hub
                    .chat
                    .who(LOBBY)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| m.nick.to_string())
                    .collect();
                let text = format!("* in {LOBBY} ({}): {}", names.len(), names.join(", "));
                drop(hub);
                Self::reply(dg, from, &text);
            }
            _ => {
                let mut hub = self.hub.borrow_mut();
                match hub.chat.say(id, LOBBY, text, MsgKind::Plain) {
                    Ok(out) => {
                        // The classroom chat relays to every member, the sender too.
                        if let Some(me) = hub.chat.member(id) {
                            Self::reply(dg, from, &format!("{}:{text}", me.nick));
                        }
                        hub.deliver(&out, dg);
                    }
                    Err(e) => Self::reply(dg, from, &format!("error: {e}")),
                }
            }
        }
    }

    /// A datagram from member `from` arrived: marks it seen and asks its flood gate.
    /// `false`: drop the datagram (the member is told once per episode).
    fn flood_pass(&mut self, dg: &mut Datagrams<'_, '_>, from: SocketAddr, now: Instant) -> bool {
        let Some(m) = self.members.get_mut(&from) else {
            return false;
        };
        m.last_seen = now;
        match m.flood.check(now) {
            Gate::Pass => true,
            Gate::Drop | Gate::Disconnect => false,
            Gate::DropAndWarn => {
                let (burst, rate) = {
                    let h = self.hub.borrow();
                    (h.cfg.flood_burst, h.cfg.flood_rate)
                };
                let text = format!(
                    "error: flood limit (at most {burst} at once, {rate} per second); message dropped"
                );
                Self::reply(dg, from, &text);
                false
            }
        }
    }

    fn leave(&mut self, dg: &mut Datagrams<'_, '_>, from: SocketAddr, reason: &str) {
        if let Some(m) = self.members.remove(&from) {
            let mut hub = self.hub.borrow_mut();
            if self.departed.len() < hub.cfg.max_udp_members {
                self.departed.insert(from, (m.flood, dg.reactor().now()));
            }
            let out = hub.chat.quit(m.id, reason);
            hub.deliver(&out, dg);
        }
    }
}

impl DatagramProtocol for UdpChat {
    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        let now = dg.reactor().now();
        let max = self.hub.borrow().cfg.max_line;
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        // An overlong datagram is not decoded (nor relayed, nor echoed in an error).
        let too_long = body.len() > max;
        let text = if too_long {
            String::new()
        } else {
            decode(data)
        };
        let text = text.trim_end_matches(['\r', '\n', ' ']);
        // A member removed by an operator (KILL) is a stranger again.
        if let Some(m) = self.members.get(&from) {
            if self.hub.borrow().chat.member(m.id).is_none() {
                self.members.remove(&from);
            }
        }
        if let Some(name) = text.strip_prefix("username@").filter(|_| !too_long) {
            let name = name.trim();
            // A member's rename is announced to the room: it counts like a message.
            if self.members.contains_key(&from) && !self.flood_pass(dg, from, now) {
                return;
            }
            self.join(dg, from, name, now);
            return;
        }
        let Some(id) = self.members.get(&from).map(|m| m.id) else {
            if self.strangers.take(now) {
                Self::reply(dg, from, "error: not joined; send username@NAME to join");
            }
            return;
        };
        if !self.flood_pass(dg, from, now) {
            return;
        }
        if too_long {
            Self::reply(
                dg,
                from,
                &format!("error: message too long (at most {max} bytes); dropped"),
            );
            return;
        }
        self.member_line(dg, from, id, text);
    }

    fn timer(&mut self, dg: &mut Datagrams<'_, '_>, id: TimerId) {
        if self.sweep != Some(id) {
            return;
        }
        self.sweep = None;
        let now = dg.reactor().now();
        let (idle, refill) = {
            let h = self.hub.borrow();
            let refill = f64::from(h.cfg.flood_burst) / h.cfg.flood_rate.max(1e-3);
            (h.cfg.udp_idle, Duration::from_secs_f64(refill.min(3600.0)))
        };
        // A departed bucket that has refilled is as good as a new one.
        self.departed
            .retain(|_, (_, left_at)| now.saturating_duration_since(*left_at) < refill);
        let expired: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) >= idle)
            .map(|(a, _)| *a)
            .collect();
        for addr in expired {
            let nick = self.members.get(&addr).and_then(|m| {
                self.hub
                    .borrow()
                    .chat
                    .member(m.id)
                    .map(|m| m.nick.to_string())
            });
            log::info!("chat: udp member {addr} timed out");
            if let Some(nick) = nick {
                Self::reply(dg, addr, &format!("Bye {nick} (timed out)"));
            }
            self.leave(
                dg,
                addr,
                &format!("Timed out after {}s of silence", idle.as_secs_f64()),
            );
        }
        if !self.members.is_empty() || !self.departed.is_empty() {
            let every = self.sweep_every();
            self.sweep = Some(dg.set_timer(every));
        }
    }

    fn stopped(&mut self, dg: &mut Datagrams<'_, '_>) {
        let addrs: Vec<SocketAddr> = self.members.keys().copied().collect();
        for addr in addrs {
            Self::reply(dg, addr, "error: server shutting down");
            self.leave(dg, addr, "Server shutting down");
        }
        if let Some(t) = self.sweep.take() {
            dg.cancel_timer(t);
        }
    }
}
