//! Keeping requested paths inside the served root.
//!
//! A request names a file relative to the root. Refused (access violation): absolute
//! names, any `..` component, NUL bytes, and anything whose real path (symlinks
//! resolved) lies outside the root. `.` components and repeated slashes are harmless.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a name was refused.
#[derive(Debug)]
pub enum JailError {
    /// The name tries to leave the root (absolute, `..`, or a symlink out).
    Escape,
    /// The file (or its directory) does not exist.
    NotFound,
    /// Another I/O error while resolving (permissions...).
    Io(io::Error),
}

impl From<io::Error> for JailError {
    fn from(e: io::Error) -> JailError {
        if e.kind() == io::ErrorKind::NotFound {
            JailError::NotFound
        } else {
            JailError::Io(e)
        }
    }
}

/// The lexically checked relative path of `name`.
fn relative(name: &[u8]) -> Result<PathBuf, JailError> {
    if name.is_empty() || name.contains(&0) {
        return Err(JailError::Escape);
    }
    let p = Path::new(OsStr::from_bytes(name));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(JailError::Escape)
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(JailError::Escape);
    }
    Ok(out)
}

/// A root directory requests are served from (canonicalised once).
#[derive(Clone, Debug)]
pub struct Jail {
    root: PathBuf,
}

impl Jail {
    /// The jail at `root`, which must be an existing directory.
    ///
    /// # Errors
    ///
    /// `root` cannot be resolved (missing: `NotFound`, permissions) or is not a
    /// directory (`InvalidInput`).
    pub fn new(root: &Path) -> io::Result<Jail> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Jail { root })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of an existing file `name` for reading.
    ///
    /// # Errors
    ///
    /// [`JailError::Escape`] for an empty name, a NUL byte, an absolute name, a `..`
    /// component, or a real path (symlinks resolved) outside the root;
    /// [`JailError::NotFound`] if it does not exist; [`JailError::Io`] for another
    /// error while resolving it (permissions).
    pub fn existing(&self, name: &[u8]) -> Result<PathBuf, JailError> {
        let rel = relative(name)?;
        let real = self.root.join(rel).canonicalize()?;
        if !real.starts_with(&self.root) {
            return Err(JailError::Escape);
        }
        Ok(real)
    }

    /// Where a new file `name` goes: `(real directory, file name)`. The directory must
    /// exist inside the root; the final component is not resolved (the caller creates
    /// it without following links).
    ///
    /// # Errors
    ///
    /// [`JailError::Escape`] for a name refused as by [`existing`](Self::existing)
    /// or whose directory resolves outside the root; [`JailError::NotFound`] if the
    /// directory does not exist; [`JailError::Io`] for another error resolving it.
    pub fn new_file(&self, name: &[u8]) -> Result<(PathBuf, PathBuf), JailError> {
        let rel = relative(name)?;
        let file = PathBuf::from(rel.file_name().ok_or(JailError::Escape)?);
        let dir = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.root.join(p).canonicalize()?,
            _ => self.root.clone(),
        };
        if !dir.starts_with(&self.root) {
            return Err(JailError::Escape);
        }
        Ok((dir, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_checks() {
        assert!(relative(b"a/b.txt").is_ok());
        assert_eq!(relative(b"./a//b").unwrap(), PathBuf::from("a/b"));
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a/..",
            b"",
            b".",
            b"a\0b",
        ] {
            assert!(
                matches!(relative(bad), Err(JailError::Escape)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let base = std::env::temp_dir().join(format!("readyloop-jail-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::fs::write(root.join("sub/ok"), b"ok").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret"), root.join("out"));
        let _ = std::os::unix::fs::symlink(&base, root.join("outdir"));
        let _ = std::os::unix::fs::symlink("sub/ok", root.join("inside"));
        let jail = Jail::new(&root).unwrap();
        assert!(jail.existing(b"sub/ok").is_ok());
        assert!(jail.existing(b"inside").is_ok());
        assert!(matches!(jail.existing(b"out"), Err(JailError::Escape)));
        assert!(matches!(
            jail.existing(b"outdir/secret"),
            Err(JailError::Escape)
        ));
        assert!(matches!(jail.existing(b"nope"), Err(JailError::NotFound)));
        assert!(jail.new_file(b"sub/new").is_ok());
        assert!(matches!(jail.new_file(b"outdir/x"), Err(JailError::Escape)));
        assert!(matches!(
            jail.new_file(b"nodir/x"),
            Err(JailError::NotFound)
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
