//! The data directory: the embedded database and the server's own secret keys.
//!
//! Keys are 32 random bytes in files of mode 0600, made once on first start; losing one
//! means recompiling rules (artifact key), reissuing client secrets (secret-hash key),
//! re-entering rule secrets (secrets key) or new signing keys (signing-keys key). Every
//! file here is written whole or not at all: through a synced temporary file, linked into
//! place, so a crash never leaves a short key behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use crate::config::Config;

/// File names inside the data directory.
pub const DATABASE_FILE: &str = "tokenhost.db";
pub const ARTIFACT_KEY_FILE: &str = "artifact.key";
pub const SECRET_HASH_KEY_FILE: &str = "secret-hash.key";
/// Encrypts rule secrets unless the configuration gives a key.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
/// Seals the private signing keys in the database.
pub const SIGNING_KEYS_KEY_FILE: &str = "signing-keys.key";
pub const BOOTSTRAP_FILE: &str = "bootstrap-client.json";

const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is {len} bytes long, not a 32-byte key: it is truncated or damaged; restore \
         it from a backup (deleting it makes a new key, and what the old one protected is lost)"
    )]
    BadKey { path: PathBuf, len: usize },
    #[error("secrets_key must be the base64 of exactly 32 bytes")]
    BadConfiguredKey,
    #[error("the system random source failed")]
    Random,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one of the server's own keys is for. Each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKey {
    /// Authenticates compiled rules stored in the database (HMAC).
    Artifacts,
    /// Keys the hashes of client secrets (HMAC).
    SecretHashes,
    /// Seals rule secrets (AES-256-GCM).
    RuleSecrets,
    /// Seals private signing keys (AES-256-GCM).
    SigningKeys,
}

impl ServerKey {
    /// Every purpose.
    pub const ALL: [ServerKey; 4] = [
        ServerKey::Artifacts,
        ServerKey::SecretHashes,
        ServerKey::RuleSecrets,
        ServerKey::SigningKeys,
    ];

    /// The file that holds this key in the data directory.
    pub fn file_name(self) -> &'static str {
        match self {
            ServerKey::Artifacts => ARTIFACT_KEY_FILE,
            ServerKey::SecretHashes => SECRET_HASH_KEY_FILE,
            ServerKey::RuleSecrets => SECRETS_KEY_FILE,
            ServerKey::SigningKeys => SIGNING_KEYS_KEY_FILE,
        }
    }
}

/// The key for `purpose`: the one place that decides where each of the server's keys comes
/// from. With a master key, derived from it (the same on every node of a cluster);
/// otherwise a file of the data directory made on first use (rule secrets: `secrets_key`
/// if configured).
pub fn server_key(config: &Config, purpose: ServerKey) -> Result<[u8; KEY_LEN], DataDirError> {
    if let Some(master) = config.master_key() {
        return Ok(master.derive(purpose));
    }
    match (purpose, &config.secrets_key) {
        (ServerKey::RuleSecrets, Some(b64)) => STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
            .ok_or(DataDirError::BadConfiguredKey),
        _ => key(&config.data_dir, purpose.file_name()),
    }
}

/// Where a data directory whose keys derive from the master key keeps its check value.
pub const MASTER_KEY_CHECK_FILE: &str = "master-key.check";

/// Whether `check` is the master key check value of the data directory in `dir`: stored
/// on first use. A directory that already has key files of its own was set up without a
/// master key; its secrets are sealed under those files, so no master key matches it.
pub fn master_key_matches(dir: &Path, check: &str) -> Result<bool, DataDirError> {
    let path = dir.join(MASTER_KEY_CHECK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) => Ok(stored.trim() == check),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let own_keys = ServerKey::ALL
                .iter()
                .any(|purpose| dir.join(purpose.file_name()).exists());
            if own_keys {
                return Ok(false);
            }
            write_private(&path, check.as_bytes())?;
            Ok(true)
        }
        Err(e) => Err(DataDirError::Io { path, source: e }),
    }
}

/// Creates the directory (mode 0700 on Unix) if needed.
pub fn ensure(dir: &Path) -> Result<(), DataDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Reads the key in `dir/name`, creating it if absent.
pub fn key(dir: &Path, name: &str) -> Result<[u8; KEY_LEN], DataDirError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let len = bytes.len();
            bytes
                .try_into()
                .map_err(|_| DataDirError::BadKey { path, len })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; KEY_LEN];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| DataDirError::Random)?;
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(DataDirError::Io { path, source: e }),
    }
}

/// Writes a file only its owner can read (mode 0600), failing if it already exists. The
/// file appears at `path` complete or not at all.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    write_new(path, |file| file.write_all(contents))
}

/// Creates `path` (mode 0600) with what `fill` writes, never visible half-written: the
/// bytes go to a temporary file in the same directory and are synced; only then is the
/// file linked at `path` (a link, unlike a rename, fails if `path` exists, so a key is
/// never replaced) and the directory synced, so the new name survives a crash too.
fn write_new(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), DataDirError> {
    let temp = temp_path(path)?;
    let written = write_temp(&temp, fill).and_then(|()| {
        std::fs::hard_link(&temp, path).map_err(io(path))?;
        sync_parent(path)
    });
    // The temporary name has served its purpose either way; a failure to remove it leaves
    // a stray file, never a wrong key.
    let _ = std::fs::remove_file(&temp);
    written
}

/// `dir/.name.<random>.tmp`: hidden, and unique so that no stale file is reused.
fn temp_path(path: &Path) -> Result<PathBuf, DataDirError> {
    let mut suffix = [0u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| DataDirError::Random)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    let suffix = URL_SAFE_NO_PAD.encode(suffix);
    Ok(path.with_file_name(format!(".{name}.{suffix}.tmp")))
}

fn write_temp(
    temp: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), DataDirError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(temp).map_err(io(temp))?;
    fill(&mut file).map_err(io(temp))?;
    file.sync_all().map_err(io(temp))
}

/// Makes a new name in `path`'s directory durable (a directory is synced like a file).
fn sync_parent(path: &Path) -> Result<(), DataDirError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tokenhost-datadir-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        ensure(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_key_is_made_once_with_mode_0600() {
        let dir = temp_dir("once");
        let first = key(&dir, "k").unwrap();
        assert_eq!(key(&dir, "k").unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("k"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the key: the temporary file it was written through is gone.
        assert_eq!(names(&dir), ["k"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_write_cut_short_leaves_nothing_at_the_final_name() {
        let dir = temp_dir("cut");
        let path = dir.join("k");
        let crashed = write_new(&path, |file| {
            file.write_all(&[7u8; 16])?;
            Err(std::io::Error::other("the disk filled up halfway"))
        });
        assert!(crashed.is_err());
        assert!(!path.exists(), "a partial key is visible at the final name");
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        // The next start makes a whole key.
        assert_eq!(key(&dir, "k").unwrap().len(), 32);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = temp_dir("exists");
        let path = dir.join(BOOTSTRAP_FILE);
        write_private(&path, b"first").unwrap();
        let again = write_private(&path, b"second");
        assert!(
            matches!(&again, Err(DataDirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{again:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(names(&dir), [BOOTSTRAP_FILE]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_truncated_key_is_refused_naming_the_file() {
        let dir = temp_dir("short");
        std::fs::write(dir.join(SIGNING_KEYS_KEY_FILE), [1u8; 5]).unwrap();
        let err = key(&dir, SIGNING_KEYS_KEY_FILE).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataDirError::BadKey { len: 5, .. }), "{text}");
        assert!(text.contains(&dir.join(SIGNING_KEYS_KEY_FILE).display().to_string()));
        assert!(text.contains("5 bytes long, not a 32-byte key"), "{text}");
        // The short file is left for the operator to restore, not silently replaced.
        assert_eq!(
            std::fs::read(dir.join(SIGNING_KEYS_KEY_FILE))
                .unwrap()
                .len(),
            5
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn each_purpose_has_its_own_key() {
        let dir = temp_dir("purposes");
        let config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let keys: Vec<[u8; 32]> = ServerKey::ALL
            .iter()
            .map(|&purpose| server_key(&config, purpose).unwrap())
            .collect();
        for (i, a) in keys.iter().enumerate() {
            assert!(keys[i + 1..].iter().all(|b| a != b));
        }
        let configured = Config {
            secrets_key: Some(STANDARD.encode([3u8; 32])),
            ..config.clone()
        };
        assert_eq!(
            server_key(&configured, ServerKey::RuleSecrets).unwrap(),
            [3u8; 32]
        );
        assert_eq!(
            server_key(&configured, ServerKey::SigningKeys).unwrap(),
            keys[3]
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
