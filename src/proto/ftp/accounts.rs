//! Accounts: a users file with per-user root and permission, passwords stored only
//! as salted Argon2id hashes (PHC strings, from the `argon2` crate).
//!
//! One user per line, `#` starts a comment:
//!
//! ```text
//! name:$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>:rw:/srv/ftp/name
//! ```
//!
//! Fields: the name, the hash, `r` (read-only) or `rw`, and the user's root (the
//! rest of the line, so it may contain `:`). [`hash_password`] makes a hash;
//! `ftp_server --add-user NAME --users FILE` appends a line.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// One account.
#[derive(Clone, Debug)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The PHC hash string (never the password).
    pub hash: String,
    /// May upload, delete, rename, make directories.
    pub write: bool,
    /// The user's root directory.
    pub root: PathBuf,
}

/// The accounts of a users file.
#[derive(Clone, Debug, Default)]
pub struct Users {
    accounts: Vec<Account>,
}

impl Users {
    /// Parses a users file's text: one `name:hash:perm:root` line per account
    /// (`perm` is `r` or `rw`, `hash` a PHC string), blank lines and `#` comments
    /// skipped.
    ///
    /// # Errors
    ///
    /// `InvalidData` naming the first bad line: fewer than four fields, an empty
    /// name, a hash that is not a PHC string, a permission other than `r`/`rw`.
    pub fn parse(text: &str) -> io::Result<Users> {
        let mut accounts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("users file line {}: {what}", i + 1),
                )
            };
            let mut f = line.splitn(4, ':');
            let (Some(name), Some(hash), Some(perm), Some(root)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return Err(bad("expected name:hash:perm:root"));
            };
            if name.is_empty() {
                return Err(bad("empty name"));
            }
            PasswordHash::new(hash).map_err(|e| bad(&format!("bad hash: {e}")))?;
            let write = match perm {
                "r" => false,
                "rw" => true,
                _ => return Err(bad("permission must be r or rw")),
            };
            accounts.push(Account {
                name: name.to_string(),
                hash: hash.to_string(),
                write,
                root: PathBuf::from(root),
            });
        }
        Ok(Users { accounts })
    }

    /// Reads and parses a users file.
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not UTF-8 (the error names the path, with the
    /// kind of the underlying error), or [`parse`](Self::parse) refuses it.
    pub fn load(path: &Path) -> io::Result<Users> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Users::parse(&text)
    }

    /// The account called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name.as_bytes() == name)
    }

    /// All accounts.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }
}

/// Whether `password` matches the PHC `hash`. A malformed hash never matches.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// Cost of a new hash: memory in KiB and passes (`Params::DEFAULT_M_COST` = 19456,
/// `DEFAULT_T_COST` = 2 are the OWASP-recommended defaults).
#[derive(Clone, Copy, Debug)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub passes: u32,
}

impl Default for HashCost {
    fn default() -> HashCost {
        HashCost {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
        }
    }
}

/// A salted Argon2id hash of `password` (16 random bytes of salt from `/dev/urandom`).
///
/// # Errors
///
/// `/dev/urandom` cannot be read, or Argon2 refuses `cost` (`Other`: memory below
/// 8 KiB, zero passes).
pub fn hash_password(password: &[u8], cost: HashCost) -> io::Result<String> {
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| io::Error::other(e.to_string()))?;
    let params = Params::new(cost.memory_kib, cost.passes, 1, None)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    Ok(a.hash_password(password, &salt)
        .map_err(|e| io::Error::other(e.to_string()))?
        .to_string())
}

/// The users-file line for a new account.
///
/// # Errors
///
/// `InvalidInput` if `name` is empty or holds `:` or white space, or `root` is not
/// UTF-8 or holds a line break (either would break the file's format).
pub fn user_line(name: &str, hash: &str, write: bool, root: &Path) -> io::Result<String> {
    if name.is_empty() || name.contains([':', '\n', '\r']) || name.contains(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a user name must be non-empty, without ':' or white space",
        ));
    }
    let root = root
        .to_str()
        .filter(|r| !r.contains(['\n', '\r']))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root must be UTF-8 on one line",
            )
        })?;
    Ok(format!(
        "{name}:{hash}:{}:{root}\n",
        if write { "rw" } else { "r" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_parse() {
        let cost = HashCost {
            memory_kib: 64,
            passes: 1,
        };
        let h = hash_password(b"s3cret", cost).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, b"s3cret"));
        assert!(!verify(&h, b"s3cret "));
        assert!(!verify("garbage", b"x"));
        let h2 = hash_password(b"s3cret", cost).unwrap();
        assert_ne!(h, h2, "salted");
        let line = user_line("bob", &h, true, Path::new("/srv/a:b")).unwrap();
        let users = Users::parse(&format!("# comment\n\n{line}")).unwrap();
        let bob = users.get(b"bob").unwrap();
        assert!(bob.write);
        assert_eq!(bob.root, PathBuf::from("/srv/a:b"));
        assert!(users.get(b"alice").is_none());
        assert!(Users::parse("bob:nothash:rw:/x").is_err());
        assert!(Users::parse(&format!("bob:{h}:x:/x")).is_err());
        assert!(user_line("a:b", &h, true, Path::new("/")).is_err());
    }
}
