//! Path confinement for the file servers (FTP and TFTP): a [`Jail`] is a root
//! directory that no path a client sends can leave. The two protocols name files
//! differently, so there are two ways in, both checked against symlinks.
//!
//! FTP paths (bytes, relative to the session's directory or absolute from the user's
//! root) map to real paths in two steps:
//! 1. [`normalize`] (pure): control bytes (NUL, CR, LF, ...) are refused; `.` and
//!    empty segments dropped; `..` pops a segment and stops at the root (as in a
//!    `chroot`, `CWD ..` at `/` stays at `/`). The result is an absolute virtual
//!    path that has no `..` at all.
//! 2. [`Jail::real`]: the virtual path under the real root, then checked against
//!    symlinks: the existing part is canonicalized and must still be under the
//!    canonical root, so a link pointing out of the tree is refused (550).
//!
//! TFTP names a file relative to the root ([`Jail::existing`] to read,
//! [`Jail::new_file`] to create). Refused (access violation, [`JailError::Escape`]):
//! absolute names, any `..` component, NUL bytes, and anything whose real path
//! (symlinks resolved) lies outside the root. `.` components and repeated slashes are
//! harmless.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why an FTP path is refused.
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

/// Why a TFTP name was refused.
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
