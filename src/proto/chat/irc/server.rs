//! Queries about the server: `MOTD`, `LUSERS`, `TIME`, `INFO`, `VERSION`, `ADMIN`.

use crate::net::Conn;
use crate::proto::chat::state::mask_match;

use super::{write_irc, IrcClient, IrcMessage, VERSION};

impl IrcClient {
    /// 402 if `msg`'s `param`-th parameter names a server other than this one.
    pub(super) fn other_server(
        &self,
        conn: &mut Conn<'_, '_>,
        msg: &IrcMessage<'_>,
        param: usize,
    ) -> bool {
        let srv = self.srv();
        match msg.params.get(param).filter(|p| !p.is_empty()) {
            Some(t) if !mask_match(t, &srv) && self.hub.borrow().chat.find(t).is_none() => {
                self.numeric(conn, 402, &format!("{t} :No such server"));
                true
            }
            _ => false,
        }
    }

    pub(super) fn irc_motd(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.other_server(conn, msg, 0) {
            self.motd(conn);
        }
        true
    }

    pub(super) fn motd(&self, conn: &mut Conn<'_, '_>) {
        let (srv, motd) = {
            let h = self.hub.borrow();
            (h.cfg.server_name.clone(), h.cfg.motd.clone())
        };
        if motd.is_empty() {
            self.numeric(conn, 422, ":MOTD File is missing");
            return;
        }
        let mut s = String::new();
        self.push_numeric(&mut s, 375, &format!(":- {srv} Message of the day - "));
        for l in &motd {
            self.push_numeric(&mut s, 372, &format!(":- {l}"));
        }
        self.push_numeric(&mut s, 376, ":End of /MOTD command.");
        write_irc(conn, &s);
    }

    pub(super) fn irc_lusers(&mut self, conn: &mut Conn<'_, '_>, _msg: &IrcMessage<'_>) -> bool {
        self.lusers(conn);
        true
    }

    pub(super) fn lusers(&self, conn: &mut Conn<'_, '_>) {
        let (total, invisible, opers, unknown, channels, max) = {
            let h = self.hub.borrow();
            let total = h.chat.len();
            let invisible = h.chat.all_members().filter(|m| m.invisible).count();
            let opers = h.chat.all_members().filter(|m| m.oper).count();
            (
                total,
                invisible,
                opers,
                h.unregistered,
                h.chat.room_count(),
                h.max_users.max(total),
            )
        };
        let mut s = String::new();
        self.push_numeric(
            &mut s,
            251,
            &format!(
                ":There are {} users and {invisible} invisible on 1 servers",
                total - invisible
            ),
        );
        self.push_numeric(&mut s, 252, &format!("{opers} :operator(s) online"));
        self.push_numeric(&mut s, 253, &format!("{unknown} :unknown connection(s)"));
        self.push_numeric(&mut s, 254, &format!("{channels} :channels formed"));
        self.push_numeric(
            &mut s,
            255,
            &format!(":I have {total} clients and 0 servers"),
        );
        self.push_numeric(
            &mut s,
            265,
            &format!("{total} {max} :Current local users {total}, max {max}"),
        );
        self.push_numeric(
            &mut s,
            266,
            &format!("{total} {max} :Current global users {total}, max {max}"),
        );
        write_irc(conn, &s);
    }

    pub(super) fn irc_time(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let now = std::time::SystemTime::now();
        let secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.numeric(
            conn,
            391,
            &format!("{srv} {secs} 0 :{}", httpdate::fmt_http_date(now)),
        );
        true
    }

    pub(super) fn irc_info(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let mut s = String::new();
        for l in [
            format!("{VERSION}: a chat server on a hand-written event loop"),
            "nc users, IRC clients and classroom UDP clients share its rooms.".into(),
        ] {
            self.push_numeric(&mut s, 371, &format!(":{l}"));
        }
        self.push_numeric(&mut s, 374, ":End of INFO list");
        write_irc(conn, &s);
        true
    }

    pub(super) fn irc_version(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let mut s = String::new();
        self.push_numeric(&mut s, 351, &format!("{VERSION} {srv} :readyloop chat"));
        self.isupport(&mut s);
        write_irc(conn, &s);
        true
    }

    pub(super) fn irc_admin(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let mut s = String::new();
        self.push_numeric(&mut s, 256, &format!("{srv} :Administrative info"));
        self.push_numeric(&mut s, 257, ":The operator of this host");
        self.push_numeric(&mut s, 258, ":readyloop chat");
        self.push_numeric(&mut s, 259, ":see the operator of this host");
        write_irc(conn, &s);
        true
    }
}
