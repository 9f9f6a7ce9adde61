//! Content-addressed file store for DICOM instances: each file lives at
//! `ROOT/ab/cd/<sha256>.dcm`, named by the SHA-256 of its bytes. A file is written to a temporary
//! name, flushed to disk, renamed into place and its folder flushed, so that once `put` returns
//! the bytes survive a crash. Files are never rewritten or deleted: the same bytes map to the
//! same name, and a name, once present, always holds those bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::domain::ContentHash;

/// What the writability check writes: room for a few small instances.
const WRITE_CHECK_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store rooted at `root`; the folder is created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SHA-256 of `bytes`.
    pub fn hash(bytes: &[u8]) -> ContentHash {
        let digest = Sha256::digest(bytes);
        let mut hex = String::with_capacity(64);
        for b in digest {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
        }
        #[expect(
            clippy::expect_used,
            reason = "64 lowercase hex digits by construction"
        )]
        ContentHash::parse(&hex).expect("a SHA-256 digest is 64 hex digits; this is a bug")
    }

    /// Where the file with this hash lives (whether or not it exists).
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let h = hash.as_str();
        self.root
            .join(&h[0..2])
            .join(&h[2..4])
            .join(format!("{h}.dcm"))
    }

    /// Stores `bytes` durably and returns their hash. Blocking: call from a blocking task.
    pub fn put(&self, bytes: &[u8]) -> io::Result<ContentHash> {
        let hash = Self::hash(bytes);
        let path = self.path(&hash);
        if path.is_file() && fs::metadata(&path)?.len() == bytes.len() as u64 {
            return Ok(hash);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp", hash.as_str(), uuid::Uuid::new_v4()));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| hash)
    }

    /// Whether a file of [`WRITE_CHECK_BYTES`] can be written and flushed under the root now
    /// (a full disk, a read-only mount or lost permissions say no). Blocking.
    pub fn check_writable(&self) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let probe = self
            .root
            .join(format!(".write-check.{}.tmp", uuid::Uuid::new_v4()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)?;
            file.write_all(&[0; WRITE_CHECK_BYTES])?;
            file.sync_all()
        })();
        let _ = fs::remove_file(&probe);
        written
    }

    /// Reads a stored file back. Blocking.
    pub fn read(&self, hash: &ContentHash) -> io::Result<Vec<u8>> {
        fs::read(self.path(hash))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // A rename is durable only once its folder's entry is on disk.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_stored_under_its_hash_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let hash = store.put(b"hello").unwrap();
        assert_eq!(
            hash.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(store.path(&hash).ends_with(format!("2c/f2/{hash}.dcm")));
        assert_eq!(store.read(&hash).unwrap(), b"hello");
    }

    #[test]
    fn storing_the_same_bytes_twice_keeps_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let a = store.put(b"same").unwrap();
        let b = store.put(b"same").unwrap();
        assert_eq!(a, b);
        let folder = store.path(&a).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(folder).unwrap().count(), 1);
    }
}
