//! The path jail: FTP paths (bytes, relative to the session's directory or absolute
//! from the user's root) map to real paths that never leave the root.
//!
//! 1. [`normalize`] (pure): control bytes (NUL, CR, LF, ...) are refused; `.` and
//!    empty segments dropped; `..` pops a segment and stops at the root (as in a
//!    `chroot`, `CWD ..` at `/` stays at `/`). The result is an absolute virtual
//!    path that has no `..` at all.
//! 2. [`Jail::real`]: the virtual path under the real root, then checked against
//!    symlinks: the existing part is canonicalized and must still be under the
//!    canonical root, so a link pointing out of the tree is refused (550).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// A control byte (NUL, CR, LF, DEL, ...) in the path (501).
    BadBytes,
    /// A symlink leads outside the root (550).
    Outside,
}

/// Resolves `arg` against the virtual directory `cwd` (both bytes); returns the
/// absolute virtual path (`/` or `/a/b`), without `.`, `..` or empty segments.
/// A `..` at `/` stays at `/`.
///
/// # Errors
///
/// [`PathError::BadBytes`] if `arg` holds a control byte (below 0x20, or DEL).
///
/// # Examples
///
/// ```
/// use readyloop::proto::ftp::jail::{normalize, PathError};
///
/// assert_eq!(normalize(b"/pub", b"../../etc/./passwd").unwrap(), b"/etc/passwd");
/// assert_eq!(normalize(b"/pub", b"a\r\nDELE x"), Err(PathError::BadBytes));
/// ```
pub fn normalize(cwd: &[u8], arg: &[u8]) -> Result<Vec<u8>, PathError> {
    if arg.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::BadBytes);
    }
    let mut segs: Vec<&[u8]> = Vec::new();
    let base: &[u8] = if arg.first() == Some(&b'/') { b"" } else { cwd };
    for seg in base.split(|&b| b == b'/').chain(arg.split(|&b| b == b'/')) {
        match seg {
            b"" | b"." => {}
            b".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::new();
    for s in &segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// The last segment of a virtual path (empty for `/`).
pub fn file_name(vpath: &[u8]) -> &[u8] {
    match vpath.iter().rposition(|&b| b == b'/') {
        Some(i) => &vpath[i + 1..],
        None => vpath,
    }
}

/// The parent of a virtual path (`/` for `/` and for top-level names).
pub fn parent(vpath: &[u8]) -> &[u8] {
    match vpath.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &vpath[..i],
    }
}

/// A root directory that paths cannot leave.
#[derive(Clone, Debug)]
pub struct Jail {
    root: PathBuf,
}

impl Jail {
    /// A jail at `root` (canonicalized; must be a directory).
    ///
    /// # Errors
    ///
    /// `root` cannot be resolved (missing: `NotFound`, permissions) or is not a
    /// directory (`InvalidInput`).
    pub fn new(root: &Path) -> io::Result<Jail> {
        let root = crate::sys::file::canonicalize(root)?;
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

    /// The real path of a normalized virtual path, without symlink checks.
    pub fn lexical(&self, vpath: &[u8]) -> PathBuf {
        let rel = vpath.strip_prefix(b"/").unwrap_or(vpath);
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    /// Whether a real path, once its symlinks are resolved, is inside the root.
    /// A path that does not exist is judged by its parent (it may be created there).
    /// Returns the resolved path.
    ///
    /// # Errors
    ///
    /// [`PathError::Outside`] if the path (or, for a missing one, its parent)
    /// resolves outside the root, or it is a dangling symlink (never followed: a
    /// later create would write wherever it points). A path whose parent is missing
    /// too is returned as it is (an operation on it fails with `NotFound`).
    pub fn contains(&self, real: &Path) -> Result<PathBuf, PathError> {
        match crate::sys::file::canonicalize(real) {
            Ok(c) if c.starts_with(&self.root) => Ok(c),
            Ok(_) => Err(PathError::Outside),
            Err(_) => {
                // Missing (or a dangling link): judge the directory it would be in.
                let meta = std::fs::symlink_metadata(real);
                if meta.is_ok_and(|m| m.file_type().is_symlink()) {
                    // A dangling link: never follow it (a later create would write
                    // wherever it points).
                    return Err(PathError::Outside);
                }
                let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
                    return Err(PathError::Outside);
                };
                match crate::sys::file::canonicalize(parent) {
                    Ok(p) if p.starts_with(&self.root) => Ok(p.join(name)),
                    Ok(_) => Err(PathError::Outside),
                    // The parent is missing too: return the lexical path; the
                    // operation on it fails with "not found" (nothing to escape to).
                    Err(_) => Ok(real.to_path_buf()),
                }
            }
        }
    }

    /// The checked real path of a normalized virtual path.
    ///
    /// # Errors
    ///
    /// As [`contains`](Self::contains): [`PathError::Outside`] if a symlink leads
    /// out of the root.
    pub fn real(&self, vpath: &[u8]) -> Result<PathBuf, PathError> {
        self.contains(&self.lexical(vpath))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_stops_at_the_root() {
        assert_eq!(normalize(b"/", b"..").unwrap(), b"/");
        assert_eq!(normalize(b"/a/b", b"../../../etc").unwrap(), b"/etc");
        assert_eq!(normalize(b"/a", b"/x//./y/").unwrap(), b"/x/y");
        assert_eq!(normalize(b"/a", b"b").unwrap(), b"/a/b");
        assert_eq!(normalize(b"/a", b"").unwrap(), b"/a");
        assert_eq!(normalize(b"/", b"a\0b"), Err(PathError::BadBytes));
        assert_eq!(normalize(b"/", b"a\nb"), Err(PathError::BadBytes));
        assert_eq!(normalize(b"/", b"caf\xc3\xa9").unwrap(), b"/caf\xc3\xa9");
        assert_eq!(file_name(b"/a/b"), b"b");
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
    }

    #[test]
    fn symlinks_out_are_refused() {
        let dir = std::env::temp_dir().join(format!("rl-jail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/sub")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("root/out")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("root/in")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", dir.join("root/dangling")).unwrap();
        let j = Jail::new(&dir.join("root")).unwrap();
        assert_eq!(j.real(b"/out"), Err(PathError::Outside));
        assert_eq!(j.real(b"/out/passwd"), Err(PathError::Outside));
        assert_eq!(j.real(b"/dangling"), Err(PathError::Outside));
        assert!(j.real(b"/in").is_ok());
        assert!(j.real(b"/sub/new-file").is_ok());
        assert!(j.real(b"/").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
