//! The file store both front ends share: atomic uploads, listings, times.
//!
//! An [`Upload`] writes to a temporary file in the target directory and renames it
//! over the target only in [`Upload::commit`]; dropping it uncommitted (an aborted or
//! broken transfer, a full disk) removes the temporary file and leaves any old file
//! exactly as it was.

use std::cell::Cell;
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static NEXT_TMP: Cell<u64> = const { Cell::new(0) };
}

/// How an upload treats an existing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// `STOR`: replace it.
    Replace,
    /// `APPE`: keep its bytes and append.
    Append,
    /// `REST n` + `STOR`: keep its first `n` bytes, then write.
    Resume(u64),
    /// `STOU`: never replace; pick a free name.
    Unique,
}

/// An upload in progress (see the module docs).
#[derive(Debug)]
pub struct Upload {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    unique: bool,
    done: bool,
    /// Bytes written by the transfer (not counting kept old bytes).
    pub written: u64,
}

/// The temporary name for an upload to `dest` (hidden, unique in this process).
fn tmp_path(dest: &Path) -> PathBuf {
    let n = NEXT_TMP.with(|c| {
        let v = c.get();
        c.set(v + 1);
        v
    });
    let mut name = OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(format!(".{}.{n}.part", std::process::id()));
    dest.with_file_name(name)
}

/// Whether a directory entry is an upload's temporary file (hidden from listings).
pub fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(b".") && name.ends_with(b".part")
}

impl Upload {
    /// Starts an upload to `dest`. For `Append`/`Resume` the kept bytes of the old
    /// file are copied into the temporary file first.
    ///
    /// # Errors
    ///
    /// The temporary file cannot be created next to `dest` (missing directory,
    /// permissions, `ENOSPC`), the old file cannot be read or copied
    /// (`Append`/`Resume`), or `InvalidInput` for a `Resume` point beyond the old
    /// file's end. A missing old file counts as empty for `Append` and `Resume(0)`,
    /// and is an error (`NotFound`) for a `Resume` point above zero.
    pub fn create(dest: &Path, mode: UploadMode) -> io::Result<Upload> {
        let tmp = tmp_path(dest);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        let up = Upload {
            file: file.try_clone()?,
            tmp,
            dest: dest.to_path_buf(),
            unique: mode == UploadMode::Unique,
            done: false,
            written: 0,
        };
        let keep = match mode {
            UploadMode::Append => Some(u64::MAX),
            UploadMode::Resume(n) => Some(n),
            _ => None,
        };
        if let Some(keep) = keep {
            match File::open(dest) {
                Ok(old) => {
                    let len = old.metadata()?.len();
                    if keep != u64::MAX && keep > len {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "restart point beyond the end of the file",
                        ));
                    }
                    if let Ok(m) = old.metadata() {
                        let _ = up
                            .file
                            .set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o777));
                    }
                    io::copy(&mut old.take(keep), &mut file)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && keep == u64::MAX => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && keep == 0 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(up)
    }

    /// Appends `data`.
    ///
    /// # Errors
    ///
    /// The write failed (`ENOSPC`/`EDQUOT`, an I/O error); how much of `data` was
    /// written is unknown then: drop the upload (the temporary file is removed).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Makes the upload visible under its name (for `Unique`, the first free name
    /// `name`, `name.1`, `name.2`, ...). Returns the final path.
    ///
    /// # Errors
    ///
    /// The rename (or, for `Unique`, the link) failed: permissions, the target is a
    /// directory; for `Unique`, `AlreadyExists` when `name` to `name.999` are all
    /// taken. The temporary file is removed then and any old file is left intact.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.file.flush()?;
        if !self.unique {
            std::fs::rename(&self.tmp, &self.dest)?;
            self.done = true;
            return Ok(self.dest.clone());
        }
        for i in 0..1000u32 {
            let cand = if i == 0 {
                self.dest.clone()
            } else {
                let mut n = self.dest.file_name().unwrap_or_default().to_os_string();
                n.push(format!(".{i}"));
                self.dest.with_file_name(n)
            };
            // link(2) fails if the name exists: no race with another upload.
            match std::fs::hard_link(&self.tmp, &cand) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.tmp);
                    self.done = true;
                    return Ok(cand);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free unique name",
        ))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = std::fs::remove_file(&self.tmp) {
                log::warn!("removing {}: {e}", self.tmp.display());
            }
        }
    }
}

/// The FTP reply code for a failed file operation: 452 for no space, 550 for
/// permission or missing files, 451 otherwise.
pub fn error_code(e: &io::Error) -> u16 {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => 452,
        Some(libc::EISDIR | libc::ENOTDIR | libc::ENOTEMPTY | libc::EEXIST | libc::ENOENT) => 550,
        _ => match e.kind() {
            io::ErrorKind::PermissionDenied
            | io::ErrorKind::NotFound
            | io::ErrorKind::AlreadyExists
            | io::ErrorKind::InvalidInput => 550,
            _ => 451,
        },
    }
}

/// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `YYYYMMDDHHMMSS` in UTC (MDTM, MLSD `modify`).
pub fn timeval(t: SystemTime) -> String {
    let s = unix_secs(t);
    let (y, m, d) = civil(s.div_euclid(86_400));
    let r = s.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ls -l` time: `Mon DD HH:MM` within six months of `now`, else `Mon DD  YYYY`.
fn ls_time(t: SystemTime, now: SystemTime) -> String {
    let s = unix_secs(t);
    let (y, m, d) = civil(s.div_euclid(86_400));
    let mon = MONTHS[(m as usize).saturating_sub(1).min(11)];
    let age = unix_secs(now) - s;
    if (0..183 * 86_400).contains(&age) {
        let r = s.rem_euclid(86_400);
        format!("{mon} {d:2} {:02}:{:02}", r / 3600, r / 60 % 60)
    } else {
        format!("{mon} {d:2}  {y}")
    }
}

fn mode_string(m: &Metadata) -> String {
    let ft = m.file_type();
    let mut s = String::with_capacity(10);
    s.push(if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else {
        '-'
    });
    let mode = m.mode();
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        s.push(if mode & bit != 0 { c } else { '-' });
    }
    s
}

/// One `LIST` line (`ls -l` style, owner shown as `ftp`), CRLF-terminated.
pub fn list_line(out: &mut Vec<u8>, name: &[u8], m: &Metadata, now: SystemTime) {
    let t = m.modified().unwrap_or(UNIX_EPOCH);
    out.extend_from_slice(
        format!(
            "{} {:>3} ftp      ftp      {:>12} {} ",
            mode_string(m),
            m.nlink(),
            m.len(),
            ls_time(t, now)
        )
        .as_bytes(),
    );
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
}

/// The RFC 3659 facts of an entry, ending with `; ` (the name follows).
pub fn mlsx_facts(out: &mut Vec<u8>, m: &Metadata, kind: &str, writable: bool) {
    let t = m.modified().unwrap_or(UNIX_EPOCH);
    let perm = if m.is_dir() {
        if writable {
            "elcmfp"
        } else {
            "el"
        }
    } else if writable {
        "radfw"
    } else {
        "r"
    };
    out.extend_from_slice(
        format!(
            "type={kind};size={};modify={};perm={perm};unix.mode=0{:o}; ",
            m.len(),
            timeval(t),
            m.mode() & 0o7777
        )
        .as_bytes(),
    );
}

/// A directory entry shown in listings.
#[derive(Debug)]
pub struct Entry {
    /// Its name (bytes, as on disk).
    pub name: Vec<u8>,
    /// Its metadata (of the link target for symlinks inside the jail).
    pub meta: Metadata,
}

/// The entries of `dir` that may be shown: at most `max`, sorted by name, without
/// upload temporaries and without symlinks that lead outside `jail`.
///
/// # Errors
///
/// `dir` cannot be opened (missing, not a directory, permissions). Entries that
/// vanish or cannot be examined while it is read are skipped, not errors.
pub fn read_dir(dir: &Path, jail: &super::jail::Jail, max: usize) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name().into_vec();
        if is_temp_name(&name) {
            continue;
        }
        let path = e.path();
        let Ok(lm) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let meta = if lm.file_type().is_symlink() {
            if jail.contains(&path).is_err() {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            }
        } else {
            lm
        };
        out.push(Entry { name, meta });
        if out.len() >= max {
            break;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A display name for logs (lossy UTF-8).
pub fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// The bytes of a path.
pub fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(timeval(UNIX_EPOCH), "19700101000000");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(timeval(t), "20231114221320");
        assert_eq!(ls_time(t, t), "Nov 14 22:13");
        let later = t + std::time::Duration::from_secs(400 * 86_400);
        assert_eq!(ls_time(t, later), "Nov 14  2023");
    }

    #[test]
    fn error_codes() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(error_code(&os(libc::ENOSPC)), 452);
        assert_eq!(error_code(&os(libc::EDQUOT)), 452);
        assert_eq!(error_code(&os(libc::EACCES)), 550);
        assert_eq!(error_code(&os(libc::ENOENT)), 550);
        assert_eq!(error_code(&os(libc::EISDIR)), 550);
        assert_eq!(error_code(&os(libc::EIO)), 451);
    }

    #[test]
    fn upload_is_atomic() {
        let dir = std::env::temp_dir().join(format!("rl-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("f");
        std::fs::write(&dest, b"old").unwrap();
        {
            let mut up = Upload::create(&dest, UploadMode::Replace).unwrap();
            up.write(b"new and partial").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let mut up = Upload::create(&dest, UploadMode::Append).unwrap();
        up.write(b"+more").unwrap();
        up.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old+more");
        let mut up = Upload::create(&dest, UploadMode::Resume(2)).unwrap();
        up.write(b"D").unwrap();
        up.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"olD");
        let up = Upload::create(&dest, UploadMode::Unique).unwrap();
        let p = up.commit().unwrap();
        assert_eq!(p, dir.join("f.1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
