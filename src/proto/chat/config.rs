//! The chat server's settings and its IRC operator accounts.

use std::io;
use std::time::Duration;

use crate::net::ListenConfig;

use super::ChatLimits;

/// Chat settings.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// History length and room, ban and `WHOWAS` limits.
    pub limits: ChatLimits,
    /// Longest line on the line protocol, in bytes.
    pub max_line: usize,
    /// Longest IRC line, in bytes (RFC 2812 says 512 with CRLF).
    pub irc_max_line: usize,
    /// Lines a client may send at once (the token bucket's size).
    pub flood_burst: u32,
    /// Lines per second a client may keep sending.
    pub flood_rate: f64,
    /// Dropped lines in a row after which a stream client is disconnected.
    pub flood_disconnect: u32,
    /// A stream client that has not chosen a nickname (IRC: registered) by then is
    /// closed.
    pub registration_timeout: Duration,
    /// A UDP member silent this long is removed (its leave announced).
    pub udp_idle: Duration,
    /// Most UDP members at once (each costs a little memory; UDP has no connection).
    pub max_udp_members: usize,
    /// The server's name in IRC prefixes and numerics.
    pub server_name: String,
    /// The network's name (IRC 001 and `NETWORK` in 005).
    pub network: String,
    /// The message of the day (IRC `MOTD`, shown on the line protocol's welcome).
    pub motd: Vec<String>,
    /// Whether IRC clients are joined to `#lobby` on connect (default: no, as on
    /// every IRC server; line and UDP users always start in the lobby).
    pub irc_autojoin: bool,
    /// Server operator accounts (IRC `OPER name password`).
    pub opers: Vec<OperAccount>,
    /// The server password IRC clients must give with `PASS` before registering.
    pub password: Option<String>,
    /// Listener settings for the line and IRC listeners; `stream.max_output` bounds
    /// every client's pending output.
    pub listen: ListenConfig,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        let mut listen = ListenConfig::default();
        listen.stream.max_output = Some(1 << 20);
        ChatConfig {
            limits: ChatLimits::default(),
            max_line: 2048,
            irc_max_line: 512,
            flood_burst: 20,
            flood_rate: 10.0,
            flood_disconnect: 200,
            registration_timeout: Duration::from_secs(60),
            udp_idle: Duration::from_secs(300),
            max_udp_members: 10_000,
            server_name: "readyloop.chat".into(),
            network: "readyloop".into(),
            motd: vec![
                "Welcome to the readyloop chat.".into(),
                "nc, IRC and UDP users share these rooms; nc and UDP users start in #lobby.".into(),
            ],
            irc_autojoin: false,
            opers: Vec::new(),
            password: None,
            listen,
        }
    }
}

/// A server operator account: a name and an Argon2id hash of its password (PHC
/// string, as `argon2` or the `argon2` crate writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperAccount {
    /// The name given to `OPER`.
    pub name: String,
    /// The password's hash (`$argon2id$v=19$...`).
    pub hash: String,
}

impl OperAccount {
    /// An account from a name and a hash.
    ///
    /// # Errors
    ///
    /// A message naming the operator if `hash` is not a PHC string.
    pub fn from_hash(name: &str, hash: &str) -> Result<OperAccount, String> {
        argon2::PasswordHash::new(hash).map_err(|e| format!("operator {name}: bad hash: {e}"))?;
        Ok(OperAccount {
            name: name.to_string(),
            hash: hash.to_string(),
        })
    }

    /// An account from a plain password, hashed here (Argon2id, a random salt from
    /// the system).
    ///
    /// # Errors
    ///
    /// `/dev/urandom` cannot be read, or hashing fails (`Other`; not expected with
    /// the default Argon2 parameters).
    pub fn from_password(name: &str, password: &str) -> io::Result<OperAccount> {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut salt = [0u8; 16];
        io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut salt)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| io::Error::other(e.to_string()))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(OperAccount {
            name: name.to_string(),
            hash: hash.to_string(),
        })
    }

    /// Whether `password` is this account's.
    pub fn verify(&self, password: &str) -> bool {
        use argon2::password_hash::PasswordVerifier;
        argon2::PasswordHash::new(&self.hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}
